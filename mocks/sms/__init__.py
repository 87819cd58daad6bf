"""An SMS provider in the shape of 46elks (``/sms/a1/sms``) that records what it received."""

from mocks.sms.app import PREFIX, Recorder, Switches, create_app

__all__ = ["PREFIX", "Recorder", "Switches", "create_app"]
