"""A simulated TakeCare-like journal: realistic SIU bookings for the test population, over MLLP."""

from mocks.journal.book import JournalBook
from mocks.journal.simulator import JournalMessage, JournalSimulator, push

__all__ = ["JournalBook", "JournalMessage", "JournalSimulator", "push"]
