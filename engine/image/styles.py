"""AnimeGANv2 styles: the registry (``styles.json``) and the checkpoint files it names.

The registry maps a style name to a checkpoint file in the checkpoints
directory, its sha256, where to download it, its licence and a description::

    {"styles": {"face_paint_512_v2": {"file": "face_paint_512_v2.pt",
                                      "sha256": null,
                                      "url": "https://github.com/bryandlee/animegan2-pytorch/raw/main/weights/face_paint_512_v2.pt",
                                      "licence": "non-commercial use only",
                                      "description": "...",
                                      "aliases": ["face_paint"]}}}

``names`` and ``blurbs`` (optional) map a UI language (``en``, ``zh``, ...) to
the style's display name and one-line description for users; ids stay
internal (callback data, the database, ``--style``). :meth:`Style.display_name`
and :meth:`Style.blurb` fall back to English, then to the id (names) or the
operator ``description`` (blurbs), so an operator-added style without them
shows its id.

``format`` says what the file is (default ``torch-state-dict``):

* ``torch-state-dict`` — a ``torch.save``d generator ``state_dict`` in the
  animegan2-pytorch layout (the ``.pt`` files); runs on torch or on ONNX
  Runtime through a cached export (:mod:`engine.image.animegan`).
* ``onnx-nhwc`` — an ONNX model with the I/O of the AnimeGANv2 authors'
  TensorFlow exports: one float32 input ``1 x H x W x 3`` (RGB, ``[-1, 1]``,
  dynamic sides, multiples of 32), one output of the same shape in
  ``[-1, 1]``; runs on ONNX Runtime only. The file name ends in ``.onnx``.

``sha256`` pins the exact file. ``null`` means *trust on first use*: the first
file seen (downloaded or placed by hand) is hashed, the hash is written to
``<file>.sha256`` next to it (``sha256sum`` format) and every later load is
checked against that pin. ``url`` may be ``null`` for operator-added styles
(e.g. a converted Hayao checkpoint): the file must then be placed by hand.

:class:`CheckpointStore` turns a :class:`Style` into a verified local file:
check the pin, or download to a temporary file in the same directory, verify,
and atomically rename it into place. Every failure is a
:class:`~engine.errors.ModelUnavailableError` that says which file belongs
where and where to get it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelUnavailableError, StyleUnavailableError, UnknownStyleError
from engine.files import atomic_write, fsync_directory, sha256_file

log = logging.getLogger(__name__)

REGISTRY_FILE = "styles.json"
#: Used when the checkpoints directory has no ``styles.json`` of its own.
BUNDLED_REGISTRY = Path(__file__).resolve().parents[2] / "checkpoints" / REGISTRY_FILE
#: Official checkpoints are ~8.6 MB; anything far larger is not a generator.
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


#: Checkpoint formats (the registry's ``format`` field); the first is the default.
TORCH_STATE_DICT = "torch-state-dict"
ONNX_NHWC = "onnx-nhwc"
FORMATS = (TORCH_STATE_DICT, ONNX_NHWC)
#: Names the engine uses for its own ONNX exports of torch checkpoints (``<stem>.<sha256[:12]>.onnx``).
_EXPORT_NAME = re.compile(r"\.[0-9a-f]{12}\.onnx$")

#: Language the display texts fall back to.
FALLBACK_LANGUAGE = "en"
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Style:
    """One registry entry (see the module docstring)."""

    name: str
    file: str
    sha256: str | None
    url: str | None
    licence: str
    description: str
    aliases: tuple[str, ...] = ()
    #: (language, display name) pairs, e.g. ``(("en", "Hayao"), ("zh", "宫崎骏 Hayao"))``.
    names: tuple[tuple[str, str], ...] = ()
    #: (language, one-line description for users) pairs.
    blurbs: tuple[tuple[str, str], ...] = ()
    #: One of :data:`FORMATS`.
    format: str = TORCH_STATE_DICT

    def display_name(self, lang: str | None = None) -> str:
        """The name users see in ``lang`` (``zh``, ``zh-CN``, ``en``, ...); else English; else the id."""
        return _localized(self.names, lang) or self.name

    def blurb(self, lang: str | None = None) -> str:
        """One line telling users what the style does, in ``lang``; else English; else the operator description."""
        return _localized(self.blurbs, lang) or self.description


def language_key(lang: str) -> str:
    """Canonical form of a language tag: lower case, ``-`` separated (``zh_CN`` -> ``zh-cn``)."""
    return lang.strip().lower().replace("_", "-")


def _localized(texts: tuple[tuple[str, str], ...], lang: str | None) -> str | None:
    """The text for ``lang``, its base language (``zh-tw`` -> ``zh``), or English; ``None`` if none applies."""
    table = dict(texts)
    wanted: list[str] = []
    if lang:
        key = language_key(lang)
        wanted += [key, key.split("-", 1)[0]]
    wanted.append(FALLBACK_LANGUAGE)
    for key in wanted:
        if key in table:
            return table[key]
    return None


def normalize_name(name: str) -> str:
    """Case-, space- and dash-insensitive form of a style name (``Face-Paint`` -> ``face_paint``)."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


class StyleRegistry:
    """The styles of one ``styles.json``, looked up by name or alias."""

    def __init__(self, styles: Iterable[Style], *, source: str = "<memory>") -> None:
        self.source = source
        self._styles: dict[str, Style] = {}
        self._lookup: dict[str, Style] = {}
        for style in styles:
            for key in (style.name, *style.aliases):
                norm = normalize_name(key)
                if norm in self._lookup:
                    raise StyleUnavailableError(f"{source}: style name or alias {key!r} is used twice")
                self._lookup[norm] = style
            self._styles[style.name] = style

    @classmethod
    def load(cls, path: Path) -> StyleRegistry:
        """Parse and validate a ``styles.json``."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise StyleUnavailableError(
                f"AnimeGANv2 style registry {path} is missing; copy checkpoints/{REGISTRY_FILE} from the repository there"
            ) from exc
        except (OSError, ValueError) as exc:
            raise StyleUnavailableError(f"AnimeGANv2 style registry {path} is unreadable: {exc}") from exc
        entries = data.get("styles") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise StyleUnavailableError(f'{path}: expected an object {{"styles": {{name: entry, ...}}}}')
        return cls((_parse_entry(path, name, entry) for name, entry in entries.items()), source=str(path))

    @classmethod
    def for_directory(cls, checkpoints_dir: Path) -> StyleRegistry:
        """The operator's registry in ``checkpoints_dir`` when there is one, else the one shipped with the code.

        The shipped styles are the normal case and say nothing (a DEBUG line);
        an operator's file that cannot be read, or no registry at all, raises
        :class:`~engine.errors.StyleUnavailableError` with what to do.
        """
        own = checkpoints_dir / REGISTRY_FILE
        if own.is_file() or not BUNDLED_REGISTRY.is_file():
            return cls.load(own)
        log.debug("no %s in %s: the shipped styles of %s", REGISTRY_FILE, checkpoints_dir, BUNDLED_REGISTRY)
        return cls.load(BUNDLED_REGISTRY)

    @property
    def styles(self) -> list[Style]:
        """All styles, in registry order."""
        return list(self._styles.values())

    def get(self, name: str) -> Style:
        """The style called ``name`` (or one of its aliases); :class:`UnknownStyleError` otherwise."""
        style = self._lookup.get(normalize_name(name))
        if style is None:
            raise UnknownStyleError(style=name, styles=", ".join(self._styles))
        return style


def _parse_entry(path: Path, name: object, entry: object) -> Style:
    where = f"{path}: style {name!r}"
    if not isinstance(name, str) or normalize_name(name) != name or not name:
        raise StyleUnavailableError(f"{where}: names are lower-case with underscores (e.g. 'face_paint_512_v2')")
    if not isinstance(entry, dict):
        raise StyleUnavailableError(f"{where}: entry must be an object")
    file_format = entry.get("format", TORCH_STATE_DICT)
    if file_format not in FORMATS:
        raise StyleUnavailableError(f"{where}: 'format' must be one of {', '.join(FORMATS)}, got {file_format!r}")
    file = entry.get("file")
    if not isinstance(file, str) or not _FILE_NAME.match(file) or file.endswith((".sha256", ".rejected", ".part")):
        raise StyleUnavailableError(f"{where}: 'file' must be a plain file name inside the checkpoints directory")
    if file_format == ONNX_NHWC and (not file.endswith(".onnx") or _EXPORT_NAME.search(file)):
        raise StyleUnavailableError(
            f"{where}: an {ONNX_NHWC} 'file' ends in .onnx and is not named like the engine's own exports "
            f"(<name>.<12 hex digits>.onnx), e.g. 'AnimeGANv2_Hayao.onnx'"
        )
    if file_format == TORCH_STATE_DICT and file.endswith(".onnx"):
        raise StyleUnavailableError(f'{where}: a .onnx \'file\' needs "format": "{ONNX_NHWC}"')
    sha = entry.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha.lower())):
        raise StyleUnavailableError(f"{where}: 'sha256' must be 64 hex digits or null")
    url = entry.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        raise StyleUnavailableError(f"{where}: 'url' must be an http(s) URL or null")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise StyleUnavailableError(f"{where}: 'aliases' must be a list of names")
    return Style(
        name=name,
        file=file,
        sha256=sha.lower() if sha else None,
        url=url,
        licence=str(entry.get("licence", "unknown")),
        description=str(entry.get("description", "")),
        aliases=tuple(aliases),
        names=_parse_texts(where, "names", entry.get("names")),
        blurbs=_parse_texts(where, "blurbs", entry.get("blurbs")),
        format=file_format,
    )


def _parse_texts(where: str, field: str, value: object) -> tuple[tuple[str, str], ...]:
    """``{"en": "...", "zh": "..."}`` -> sorted (language, text) pairs; one line each, no empty texts."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise StyleUnavailableError(f'{where}: {field!r} must be an object {{"en": "...", "zh": "..."}}')
    pairs: dict[str, str] = {}
    for lang, text in value.items():
        key = language_key(lang) if isinstance(lang, str) else ""
        if not _LANGUAGE.match(key):
            raise StyleUnavailableError(f"{where}: {field!r} keys are language codes such as 'en' or 'zh', got {lang!r}")
        if not isinstance(text, str) or not text.strip() or "\n" in text or "\r" in text:
            raise StyleUnavailableError(f"{where}: {field}[{lang!r}] must be one non-empty line of text")
        if key in pairs:
            raise StyleUnavailableError(f"{where}: {field!r} has language {lang!r} twice")
        pairs[key] = text.strip()
    return tuple(sorted(pairs.items()))


#: Checks a candidate checkpoint file (e.g. that it is a loadable state_dict); raises to reject it.
Validator = Callable[[Path], None]


class CheckpointStore:
    """Local, verified checkpoint files for registry styles, downloading them when allowed."""

    def __init__(self, directory: Path, *, download: bool = True, timeout: float = DOWNLOAD_TIMEOUT) -> None:
        self.directory = Path(directory)
        self.download = download
        self.timeout = timeout

    def path(self, style: Style) -> Path:
        """Where ``style``'s checkpoint lives."""
        return self.directory / style.file

    def pin_path(self, style: Style) -> Path:
        """The trust-on-first-use hash file of ``style`` (used when the registry has no sha256)."""
        return self.directory / f"{style.file}.sha256"

    def expected_sha256(self, style: Style) -> str | None:
        """The registry hash, else the pinned one, else ``None`` (nothing seen yet)."""
        if style.sha256:
            return style.sha256
        try:
            text = self.pin_path(style).read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return None
        if not text or not _SHA256.match(text[0].lower()):
            raise StyleUnavailableError(
                f"{self.pin_path(style)} is not a sha256 pin; delete it to re-pin {self.path(style)} on next use"
            )
        return text[0].lower()

    def ensure(self, style: Style, validate: Validator | None = None) -> tuple[Path, str]:
        """A verified local checkpoint for ``style`` and its sha256, downloading it if needed.

        A present file whose hash does not match is moved aside to
        ``<file>.rejected`` (kept for inspection, never loaded) and, when
        downloading is allowed, fetched again. ``validate`` runs before a new
        file is accepted (downloaded or pinned for the first time).
        """
        path = self.path(style)
        expected = self.expected_sha256(style)
        if path.is_file():
            actual = sha256_file(path)
            if expected is None:
                if validate:
                    validate(path)
                self._pin(style, actual, how="found in place")
                return path, actual
            if actual == expected:
                return path, actual
            rejected = path.with_name(path.name + ".rejected")
            os.replace(path, rejected)
            problem = (
                f"{path} has sha256 {actual}, expected {expected} "
                f"({'registry' if style.sha256 else 'pinned on first use in ' + str(self.pin_path(style))}); "
                f"the file was rejected and moved to {rejected}"
            )
            if not style.sha256:
                problem += f" (if the new file is legitimate, delete {self.pin_path(style)} to pin it again)"
            log.error("%s", problem)
            if not (self.download and style.url):
                raise StyleUnavailableError(f"{problem}. {self._how_to_get(style, expected)}")
        return self._download(style, expected, validate)

    def _pin(self, style: Style, sha: str, *, how: str) -> None:
        if style.sha256:
            return
        pin = self.pin_path(style)
        try:
            atomic_write(pin, f"{sha}  {style.file}\n".encode())
        except OSError as exc:
            log.warning(
                "AnimeGANv2 style %r: cannot write the sha256 pin %s (%s); %s is used unpinned",
                style.name,
                pin,
                exc,
                self.path(style),
            )
            return
        log.warning(
            "AnimeGANv2 style %r: %s has no sha256 in the registry; pinned %s (%s) in %s",
            style.name,
            self.path(style),
            sha,
            how,
            pin,
        )

    def _how_to_get(self, style: Style, expected: str | None) -> str:
        where = f"Put the file at {self.path(style)}"
        source = f" (download it from {style.url})" if style.url else " (no download URL is registered for this style)"
        check = f"; its sha256 must be {expected}" if expected else ""
        return where + source + check + "."

    def _download(self, style: Style, expected: str | None, validate: Validator | None) -> tuple[Path, str]:
        """Fetch, verify, validate and move the checkpoint into place (pinning it when unpinned); (path, its sha256)."""
        path = self.path(style)
        if not style.url:
            raise StyleUnavailableError(
                f"AnimeGANv2 style {style.name!r}: checkpoint {path} is missing. {self._how_to_get(style, expected)}"
            )
        if not self.download:
            raise StyleUnavailableError(
                f"AnimeGANv2 style {style.name!r}: checkpoint {path} is missing and downloading is disabled "
                f"(anime_download=False). {self._how_to_get(style, expected)}"
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=f".{style.file}.", suffix=".part")
        except OSError as exc:
            raise StyleUnavailableError(
                f"cannot write to the checkpoints directory {self.directory} ({exc}). {self._how_to_get(style, expected)}"
            ) from exc
        tmp = Path(tmp_name)
        try:
            log.info("downloading AnimeGANv2 style %r from %s to %s", style.name, style.url, path)
            with os.fdopen(fd, "wb") as out:
                actual = self._fetch(style.url, out)
                out.flush()
                os.fsync(out.fileno())  # durable before the rename makes it the checkpoint
            if expected and actual != expected:
                raise StyleUnavailableError(
                    f"AnimeGANv2 style {style.name!r}: the file downloaded from {style.url} has sha256 {actual}, "
                    f"expected {expected}; it was rejected (deleted). {self._how_to_get(style, expected)}"
                )
            if validate:
                try:
                    validate(tmp)
                except ModelUnavailableError as exc:
                    raise StyleUnavailableError(
                        f"AnimeGANv2 style {style.name!r}: the file downloaded from {style.url} was rejected "
                        f"(deleted): {exc}. {self._how_to_get(style, expected)}"
                    ) from exc
            os.replace(tmp, path)
            fsync_directory(path.parent)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise StyleUnavailableError(
                f"AnimeGANv2 style {style.name!r}: checkpoint {path} is missing and downloading it from "
                f"{style.url} failed ({reason}). {self._how_to_get(style, expected)}"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        if expected is None:
            self._pin(style, actual, how=f"downloaded from {style.url}")
        return path, actual

    def _fetch(self, url: str, out) -> str:
        request = urllib.request.Request(url, headers={"User-Agent": "voice2anime"})
        digest = hashlib.sha256()
        size = 0
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"download larger than {MAX_DOWNLOAD_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()
