"""Typed errors of the engine.

A :class:`UserError` is something the person in the chat caused and can fix
(bad audio, too long, nothing heard). It carries a stable message ``key``
(translated by ``handlers/i18n.py``) plus parameters, and an English default
text for the CLI and logs. Anything else is an internal/operator error.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """An error whose reason is shown to the user.

    ``key`` names the user-facing message (e.g. ``"audio.too_long"``);
    ``params`` fill its placeholders; ``str(err)`` is the English text.
    """

    key: str = "error.generic"
    template: str = "Something went wrong with your request."

    def __init__(self, detail: str | None = None, **params: Any) -> None:
        self.params = params
        self.detail = detail
        super().__init__(self.template.format(**params))


class AudioError(UserError):
    """The voice note cannot be used (base class of the audio errors)."""

    key = "audio.unreadable"
    template = "I couldn't read that audio file. Please send a voice note or an OGG/MP3/M4A/WAV file."


class EmptyAudioError(AudioError):
    """The file has no bytes or no audio samples."""

    key = "audio.empty"
    template = "That audio file is empty. Please record the voice note again."


class UnsupportedAudioError(AudioError):
    """Not an audio file (or a container/codec we do not accept)."""

    key = "audio.unsupported"
    template = "That doesn't look like audio. Please send a voice note or an OGG/MP3/M4A/WAV file."


class AudioTooLargeError(AudioError):
    """The file is bigger than the configured byte limit."""

    key = "audio.too_large"
    template = "That file is too big ({size_mb:.1f} MB). The limit is {limit_mb:.1f} MB."


class AudioTooLongError(AudioError):
    """The audio lasts longer than the configured limit."""

    key = "audio.too_long"
    template = "That voice note is {seconds:.0f} s long. Please keep it under {limit:.0f} s."


class NoSpeechError(AudioError):
    """Decoding worked but nothing was said (silence, noise, music)."""

    key = "audio.no_speech"
    template = "I couldn't hear any words in that voice note. Please speak closer to the microphone and try again."


class TextTooLongError(UserError):
    """Typed description over the configured length limit."""

    key = "text.too_long"
    template = "That description is too long ({length} characters). Please keep it under {limit}."


class EmptyTextError(UserError):
    """The description has no usable words."""

    key = "text.empty"
    template = "Please describe the picture you want, e.g. “a girl with blue hair under cherry blossoms”."


class ImageError(UserError):
    """The photo cannot be used."""

    key = "image.unreadable"
    template = "I couldn't read that image. Please send a JPEG, PNG or WebP photo."


class ImageTooLargeError(ImageError):
    """The photo is bigger than the byte limit of the platform adapter."""

    key = "image.too_large"
    template = "That picture is too big ({size_mb:.1f} MB). The limit is {limit_mb:.1f} MB."


class UnknownStyleError(UserError):
    """The requested style is not in the registry."""

    key = "style.unknown"
    template = "I don't know the style “{style}”. Available styles: {styles}."


class QueueFullError(UserError):
    """The server's queue is full; try again later."""

    key = "queue.full"
    template = "I'm very busy right now ({limit} pictures waiting). Please try again in a few minutes."


class UserQueueFullError(UserError):
    """This user already has as many jobs waiting as allowed."""

    key = "queue.user_full"
    template = "You already have {limit} pictures waiting. Please wait for them (or /cancel one) first."


class Cancelled(Exception):
    """A job was cancelled cooperatively (not an error for the user)."""


class ModelUnavailableError(RuntimeError):
    """A model or checkpoint cannot be loaded or fetched.

    The message says exactly what file/model is missing and where to put it;
    it is meant for the operator and never contains secrets.
    """


class DeviceUnavailableError(ModelUnavailableError):
    """The configured torch device (``TORCH_DEVICE``) does not exist on this machine, e.g. ``cuda`` without a GPU."""


class ImageTooManyPixelsError(ImageError):
    """The photo has more pixels than allowed (``PHOTO_MAX_PIXELS``), read from its header before decoding."""

    key = "image.too_many_pixels"
    template = "That picture is too large ({width}×{height} px). Send one up to {limit_mp:g} megapixels."
