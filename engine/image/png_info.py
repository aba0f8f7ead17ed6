"""How a picture was made, inside its PNG: AUTOMATIC1111's ``parameters`` text, plus the words it was drawn from.

The ``parameters`` chunk is the "infotext" that AUTOMATIC1111's PNG Info
tab, ComfyUI loaders and image hosts read::

    a girl under cherry blossoms, anime style
    Negative prompt: lowres, bad anatomy
    Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 42, Size: 512x512, Model: …, Style: paprika

Values holding a comma, colon or newline are JSON-quoted, as A1111 does. Keys
of our own (``Style``, ``Lora``, ``Lora weight``) follow the standard ones;
an upscaled picture says so with A1111's ``Postprocess upscale by`` and
``Postprocess upscaler``. A picture drawn keeping another picture's
composition carries the unit as A1111's ControlNet extension writes it
(``ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny, Weight: 1.0, …"``,
plus ``Clip skip: 2`` for the line-art ControlNet, run so); the control
image itself is not in the PNG. The transcript a picture was drawn from and its
language go in a chunk of our own, ``voice2anime`` (UTF-8 JSON), so the
infotext stays exactly what other tools expect. Pillow writes each chunk as
``tEXt`` when it is Latin-1 and as ``iTXt`` (UTF-8) otherwise.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, PngImagePlugin

from engine.image.control import A1111_MODULES, AS_IT_IS, CANNY_HIGH, CANNY_LOW, CLIP_SKIP_2, kind_of

#: The chunk AUTOMATIC1111 writes its infotext to (and other tools read).
PARAMETERS_CHUNK = "parameters"
#: Our own chunk: ``{"transcript": …, "language": …}`` as UTF-8 JSON.
OWN_CHUNK = "voice2anime"

#: Our scheduler names -> (A1111 sampler, A1111 schedule type or None).
SAMPLERS: dict[str, tuple[str, str | None]] = {
    "dpmpp": ("DPM++ 2M", "Karras"),
    "euler_a": ("Euler a", None),
    "lcm": ("LCM", None),
    "turbo": ("Euler a", "SGM Uniform"),  # trailing timesteps: what A1111 calls SGM Uniform
    "hyper": ("DDIM", "SGM Uniform"),
}
#: A1111's single-name samplers from before "Schedule type" existed (v1.8 and older).
_LEGACY_SAMPLERS = {"DPM++ 2M Karras": ("DPM++ 2M", "Karras")}
_SCHEDULERS = {a1111: ours for ours, a1111 in SAMPLERS.items()}

_NEGATIVE = "Negative prompt:"
#: One ``Key: value`` of the last line (A1111's ``re_param``): a value is JSON-quoted or runs to the next comma.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
#: The infotext key of the (one) ControlNet unit, as A1111's ControlNet extension numbers them.
CONTROLNET_UNIT = "ControlNet 0"
#: A1111's resize modes of a control image: resized to the picture's size as it is, or cut to its proportions first.
JUST_RESIZE, CROP_AND_RESIZE = "Just Resize", "Crop and Resize"


@dataclass(frozen=True)
class PictureParameters:
    """What a picture was made with; ``None`` for what did not apply (a restyled photo has no prompt or seed).

    ``scheduler`` is this project's name (``dpmpp``, ``euler_a``, …); ``sampler``
    is the A1111 sampler text as written when it is none of ours (else ``None``).
    ``width``/``height`` are the drawing's size (before any upscale).
    """

    prompt: str = ""
    negative: str = ""
    steps: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    guidance: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    lora: str | None = None
    lora_scale: float | None = None
    style: str | None = None
    upscale: int | None = None
    upscaler: str | None = None
    transcript: str | None = None
    language: str | None = None
    #: The ControlNet that kept another picture's composition: its kind (``engine.image.control.CONTROL_KINDS``;
    #: ``None`` when the infotext names one we do not have), the A1111 preprocessor that made its control image, its
    #: model's name, its weight and how its image was fitted to the picture (:data:`JUST_RESIZE`,
    #: :data:`CROP_AND_RESIZE`); ``None``: no ControlNet.
    control: str | None = None
    control_module: str | None = None
    control_model: str | None = None
    control_weight: float | None = None
    control_resize: str | None = None

    @property
    def control_cropped(self) -> bool:
        """Whether the control image was cut to the picture's proportions (A1111's default) rather than only resized."""
        return self.control_resize != JUST_RESIZE

    @property
    def controlled(self) -> bool:
        """Whether the picture was drawn keeping another picture's composition (a ControlNet), which the PNG does not hold."""
        return self.control_model is not None

    @property
    def drawn(self) -> bool:
        """Whether these are a drawing's parameters (prompt, seed, steps): what reproducing a picture needs."""
        return bool(self.prompt) and self.seed is not None and self.steps is not None

    def upscaled(self, scale: int, upscaler: str) -> PictureParameters:
        """These parameters, noting that the picture was upscaled ``scale`` times with ``upscaler``."""
        return replace(self, upscale=scale, upscaler=upscaler)

    def infotext(self) -> str:
        """The A1111 infotext: the prompt, ``Negative prompt: …`` when there is one, then the ``Key: value`` line."""
        sampler, schedule = SAMPLERS.get(self.scheduler or "", (self.sampler, None))
        size = f"{self.width}x{self.height}" if self.width and self.height else None
        fields: list[tuple[str, Any]] = [
            ("Steps", self.steps),
            ("Sampler", sampler),
            ("Schedule type", schedule),
            ("CFG scale", self.guidance),
            ("Seed", self.seed),
            ("Size", size),
            ("Model", self.model),
            ("Clip skip", 2 if self.control in CLIP_SKIP_2 else None),
            (CONTROLNET_UNIT, self._control_unit()),
            ("Lora", self.lora),
            ("Lora weight", self.lora_scale if self.lora else None),
            ("Style", self.style),
            ("Postprocess upscale by", self.upscale),
            ("Postprocess upscaler", self.upscaler if self.upscale else None),
        ]
        line = ", ".join(f"{key}: {_quote(str(value))}" for key, value in fields if value is not None)
        lines = [self.prompt] if self.prompt else []
        if self.negative:
            lines.append(f"{_NEGATIVE} {self.negative}")
        return "\n".join([*lines, line])

    def _control_unit(self) -> str | None:
        """The ControlNet unit as A1111's extension serialises one (``Key: value, …``, no value with a comma or colon)."""
        if self.control_model is None:
            return None
        fields: list[tuple[str, Any]] = [
            ("Module", self.control_module or A1111_MODULES.get(self.control or "", AS_IT_IS)),
            ("Model", self.control_model),
            ("Weight", self.control_weight if self.control_weight is not None else 1.0),
            ("Resize Mode", self.control_resize or CROP_AND_RESIZE),
        ]
        if self.control == "canny":
            fields += [("Threshold A", float(CANNY_LOW)), ("Threshold B", float(CANNY_HIGH))]
        fields += [("Guidance Start", 0.0), ("Guidance End", 1.0), ("Control Mode", "Balanced")]
        return ", ".join(f"{key}: {value}" for key, value in fields)


def parse(infotext: str, own: str | None = None) -> PictureParameters:
    """The parameters in an A1111 infotext (and our own chunk's JSON ``own``); unknown keys are ignored.

    The last line is the ``Key: value`` line when it holds at least one such
    pair, as in A1111; lines before ``Negative prompt:`` are the prompt, the
    rest the negative prompt (both may span lines).
    """
    lines = infotext.strip("\n").split("\n")
    values: dict[str, str] = {}
    if lines and (found := _PARAM.findall(lines[-1])):
        values = {key: _unquote(value) for key, value in found}
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if negative or line.startswith(_NEGATIVE):
            negative.append(line.removeprefix(_NEGATIVE).lstrip(" ") if not negative else line)
        else:
            prompt.append(line)
    sampler, schedule = values.get("Sampler"), values.get("Schedule type")
    if sampler in _LEGACY_SAMPLERS and schedule is None:
        sampler, schedule = _LEGACY_SAMPLERS[sampler]
    scheduler = _scheduler(sampler, schedule)
    width, height = _size(values.get("Size"))
    unit = _unit(values.get(CONTROLNET_UNIT))
    extra = json.loads(own) if own else {}
    return PictureParameters(
        prompt="\n".join(prompt),
        negative="\n".join(negative),
        steps=_int(values.get("Steps")),
        sampler=sampler if scheduler is None else None,
        scheduler=scheduler,
        guidance=_float(values.get("CFG scale")),
        seed=_int(values.get("Seed")),
        width=width,
        height=height,
        model=values.get("Model"),
        lora=values.get("Lora"),
        lora_scale=_float(values.get("Lora weight")),
        style=values.get("Style"),
        upscale=_int(values.get("Postprocess upscale by")),
        upscaler=values.get("Postprocess upscaler"),
        transcript=extra.get("transcript") if isinstance(extra, dict) else None,
        language=extra.get("language") if isinstance(extra, dict) else None,
        control=kind_of(unit.get("Module"), unit.get("Model")) if unit else None,
        control_module=unit.get("Module") if unit else None,
        control_model=(unit.get("Model") or unit.get("Module") or CONTROLNET_UNIT) if unit else None,
        control_weight=_float(unit.get("Weight")) if unit else None,
        control_resize=unit.get("Resize Mode") if unit else None,
    )


def _unit(text: str | None) -> dict[str, str]:
    """The ``Key: value`` pairs of a ControlNet unit's infotext (empty: none, or a unit that is switched off)."""
    if not text:
        return {}
    pairs = (item.strip().partition(": ") for item in text.split(","))
    unit = {key.strip(): value.strip() for key, sep, value in pairs if sep}
    return {} if unit.get("Enabled") == "False" else unit


def png_info(parameters: PictureParameters) -> PngImagePlugin.PngInfo:
    """The PNG text chunks that carry ``parameters`` (pass as ``Image.save(…, pnginfo=…)``).

    Our own chunk is always written (``null`` for an unknown transcript): it
    marks a picture this project made.
    """
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_CHUNK, parameters.infotext())
    own = {"transcript": parameters.transcript, "language": parameters.language}
    info.add_text(OWN_CHUNK, json.dumps(own, ensure_ascii=False))
    return info


def read(source: Image.Image | bytes, *, ours_only: bool = False) -> PictureParameters | None:
    """The parameters a PNG (an open image or its bytes) carries, or ``None`` when it has none.

    ``ours_only``: only a picture this project made (one with our own chunk)
    counts, not one another tool wrote an infotext into.
    """
    if isinstance(source, bytes):
        try:
            with Image.open(io.BytesIO(source)) as image:  # the text chunks come before the pixels: none are decoded
                return read(image, ours_only=ours_only)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None
    text = source.info.get(PARAMETERS_CHUNK)
    own = source.info.get(OWN_CHUNK)
    if not isinstance(text, str) or not text.strip() or (ours_only and own is None):
        return None
    try:
        return parse(text, own if isinstance(own, str) else None)
    except ValueError:  # a broken chunk of our own: the infotext alone still says how the picture was made
        return parse(text)


def _quote(value: str) -> str:
    """A1111's quoting: JSON-quote a value that holds a comma, colon or newline."""
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ",:\n") else value


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        try:
            unquoted = json.loads(value)
        except ValueError:
            return value
        return unquoted if isinstance(unquoted, str) else value
    return value


def _scheduler(sampler: str | None, schedule: str | None) -> str | None:
    """Our scheduler for an A1111 sampler and schedule type ("Automatic": none); ``None`` when we have none like it."""
    return _SCHEDULERS.get((sampler or "", None if schedule == "Automatic" else schedule))


def _size(value: str | None) -> tuple[int | None, int | None]:
    match = _SIZE.match(value or "")
    return (int(match[1]), int(match[2])) if match else (None, None)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
