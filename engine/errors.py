"""Typed errors of the engine.

A :class:`UserError` is something the person in the chat caused and can fix
(bad audio, too long, nothing heard). It carries a stable message ``key``
plus parameters; the words live once, in the catalogs of ``handlers/locales/`` (every UI
language, English for the CLI). Anything else is an internal/operator error.
"""

from __future__ import annotations

import re
from typing import Any

#: Bytes in a megabyte, as the size messages count them.
MEGABYTE = 1024 * 1024

#: What looks like a credential in a library's message: a Hugging Face token, a bearer token, ``token=``, a URL's password.
_SECRET = re.compile(r"(hf_[A-Za-z0-9]{8,}|(?i:bearer)\s+\S+|(?i:token)=\S+|://[^/\s:@]+:[^/\s@]+@)")

#: Advice in the libraries' messages that does not apply here: no stack trace is shown, and going online is the fix's job.
_MISLEADING_ADVICE = re.compile(
    r"\s*(?:Please check out the root cause in the stacktrace above\.|To enable repo look-ups and downloads online, pass 'local_files_only=False' as input\.)"
)


def scrub_secrets(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``<redacted>``."""
    return _SECRET.sub("<redacted>", text)


def library_reason(exc: BaseException) -> str:
    """Why a library failed, for an operator's fix: its exception's type and message, whole, on one line, no secrets.

    Whole, so a fix that ends with it never stops mid-sentence.
    """
    text = _MISLEADING_ADVICE.sub("", " ".join(str(exc).split())) or type(exc).__name__
    return scrub_secrets(f"{type(exc).__name__}: {text}")


class UserError(Exception):
    """An error whose reason is shown to the user.

    ``key`` names the user-facing message (e.g. ``"audio.too_long"``);
    ``params`` fill its placeholders; ``str(err)`` is the key (and the
    ``detail`` for the operator's log), never the user's text.
    """

    key: str = "error.generic"

    def __init__(self, detail: str | None = None, **params: Any) -> None:
        self.params = params
        self.detail = detail
        super().__init__(f"{self.key}: {detail}" if detail else self.key)


class AudioError(UserError):
    """The voice note cannot be used (base class of the audio errors)."""

    key = "audio.unreadable"


class EmptyAudioError(AudioError):
    """The file has no bytes or no audio samples."""

    key = "audio.empty"


class UnsupportedAudioError(AudioError):
    """Not an audio file (or a container/codec we do not accept)."""

    key = "audio.unsupported"


class _TooManyBytes(UserError):
    """A file over a byte limit; the message gives both sizes in megabytes."""

    @classmethod
    def of(cls, size: int, limit: int) -> _TooManyBytes:
        """The error for a ``size``-byte file over a ``limit``-byte limit."""
        return cls(size_mb=size / MEGABYTE, limit_mb=limit / MEGABYTE)


class AudioTooLargeError(_TooManyBytes, AudioError):
    """The file is bigger than the configured byte limit."""

    key = "audio.too_large"


class AudioTooLongError(AudioError):
    """The audio lasts longer than the configured limit."""

    key = "audio.too_long"


class NoSpeechError(AudioError):
    """Decoding worked but nothing was said (silence, noise, music)."""

    key = "audio.no_speech"


class TextTooLongError(UserError):
    """Typed description over the configured length limit."""

    key = "text.too_long"


class EmptyTextError(UserError):
    """The description has no usable words."""

    key = "text.empty"


class ImageError(UserError):
    """The photo cannot be used."""

    key = "image.unreadable"


class ImageTooLargeError(_TooManyBytes, ImageError):
    """The photo is bigger than the byte limit of the platform adapter."""

    key = "image.too_large"


class UnknownStyleError(UserError):
    """The requested style is not in the registry."""

    key = "style.unknown"


class QueueFullError(UserError):
    """The server's queue is full; try again later."""

    key = "queue.full"


class UserQueueFullError(UserError):
    """This user already has as many jobs waiting as allowed."""

    key = "queue.user_full"


class Cancelled(Exception):
    """A job was cancelled cooperatively (not an error for the user)."""


class ModelUnavailableError(RuntimeError):
    """A model or checkpoint cannot be loaded or fetched.

    The message says exactly what file/model is missing and where to put it
    (the operator's fix); it never contains secrets. ``model`` says which part
    of the bot it is (a key of the ``model.name.*`` messages), so a user can be
    told that without the operator's details.
    """

    model: str = "model"

    @property
    def fix(self) -> str:
        """What the operator does about it (the message)."""
        return str(self)


class SpeechModelUnavailableError(ModelUnavailableError):
    """The speech recognition model (Whisper) cannot be loaded or fetched."""

    model = "speech"


class DrawingModelUnavailableError(ModelUnavailableError):
    """The drawing model (Stable Diffusion, its LoRAs) cannot be loaded or fetched."""

    model = "drawing"


class StyleUnavailableError(ModelUnavailableError):
    """A style's weights (AnimeGANv2) cannot be loaded or fetched."""

    model = "style"


class ImageCheckUnavailableError(ModelUnavailableError):
    """The content policy's picture classifier cannot be loaded or fetched."""

    model = "image_check"


class DeviceUnavailableError(ModelUnavailableError):
    """The configured torch device (``TORCH_DEVICE``) does not exist on this machine, e.g. ``cuda`` without a GPU."""


class ImageTooManyPixelsError(ImageError):
    """The photo has more pixels than allowed (``PHOTO_MAX_PIXELS``), read from its header before decoding."""

    key = "image.too_many_pixels"


class UpscaleModelUnavailableError(ModelUnavailableError):
    """The upscaling model (Real-ESRGAN, ``UPSCALE_MODEL``) cannot be loaded or fetched."""

    model = "upscale"


class ControlModelUnavailableError(ModelUnavailableError):
    """A ControlNet (``CONTROLNET_*``: keeping a photo's composition, drawing from a sketch) cannot be loaded or fetched."""

    model = "control"


class DepthModelUnavailableError(ControlModelUnavailableError):
    """The depth estimator (``CONTROLNET_DEPTH_ESTIMATOR``: a photo's depth map for the depth ControlNet) cannot be loaded or fetched."""


class PoseModelUnavailableError(ControlModelUnavailableError):
    """The pose detector (``CONTROLNET_POSE_DETECTOR``: DWPose, a photo's skeleton for the pose ControlNet) cannot be loaded or fetched."""


class NoPoseFoundError(ImageError):
    """Keeping a photo's pose, but no person's pose was found in it."""

    key = "control.no_pose"


class ControlNeedsTorchError(ControlModelUnavailableError):
    """The ControlNets cannot steer the drawing model: its UNet runs on ONNX Runtime (``SD_BACKEND=onnx``).

    Nothing is missing: the fix is a setting, which the user's message names.
    """

    model = "control_backend"
