"""A simulated TakeCare-like journal: SIU bookings and MDM letters for the test population, over MLLP."""

from mocks.journal.book import JournalBook
from mocks.journal.simulator import JournalLetter, JournalMessage, JournalSimulator, LetterKind, push

__all__ = ["JournalBook", "JournalLetter", "JournalMessage", "JournalSimulator", "LetterKind", "push"]
