"""A simulated TakeCare-like journal: realistic SIU bookings for the test population, over MLLP."""

from mocks.journal.simulator import JournalMessage, JournalSimulator, push

__all__ = ["JournalMessage", "JournalSimulator", "push"]
