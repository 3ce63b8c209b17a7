"""Errors a user can cause. The CLI and the operators print their message, never a traceback."""


class TalkingHeadError(Exception):
    """Base of every error whose message tells the user what went wrong and what to do."""


class AudioError(TalkingHeadError):
    """The sound file is missing, unreadable, empty, silent or too short."""


class BundleError(TalkingHeadError):
    """A model bundle folder is incomplete, inconsistent or corrupt."""


class SubjectError(TalkingHeadError):
    """A subject or style name that the bundle does not know."""


class MeshError(TalkingHeadError):
    """A mesh file that cannot be read or does not match the template."""


class DeviceError(TalkingHeadError):
    """A requested compute device that is not available."""
