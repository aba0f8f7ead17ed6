"""Which check judges which picture: drawn pictures by their anime rating, a picture a user sends by the photo detector too.

NudeNet (:class:`engine.policy.photo_check.ImageCheck`) is trained on photographs. On
flat drawn shapes it sees body parts: a cartoon face — a skin-coloured oval
with two dots — scores up to 0.81 as exposed buttocks and 0.44 as an exposed
breast (``bench/policy_image.py``; README, "Content policy"). So:

* **drawn pictures** — everything the bot draws, its previews and every
  styled result — are judged by :class:`AnimeRatingCheck`: SmilingWolf's WD
  tagger v3, the classifier the anime community rates pictures with, trained
  on Danbooru's ratings (*general*, *sensitive*, *questionable*, *explicit*);
* **a picture a user sends** (a photo job's source) is judged by both: the
  tagger (people send drawings too) and NudeNet at :data:`PHOTO_THRESHOLDS`
  (photographs are NudeNet's own ground), set above what the harmless
  drawings scored;
* a **restyle**'s source is the bot's own drawing or a photo both checks
  passed when it arrived: the tagger judges it.

:class:`ContentCheck` is the pipeline's ``image_check`` that routes them;
:func:`check_photo` asks any check for its verdict on a user's picture.

**The tagger** (:class:`AnimeRatingCheck`) is an ONNX model: one input, a
batch of 448 x 448 BGR pictures, NHWC float32 in 0..255 (the picture
composited on white and padded to a centred white square first,
:func:`tagger_input`), one output of sigmoid probabilities, one per row of
``selected_tags.csv`` (``tag_id,name,category,count``); the rows of category 9
are the four ratings. It comes from the Hugging Face hub on first use, at a
pinned revision with each file's sha256 checked (:data:`PINNED_TAGGERS`), into
``MODELS_DIR``, or from a local directory with both files.

**Thresholds** (:data:`RATING_THRESHOLDS`): Danbooru rates every picture
exactly once, so the four ratings behave as shares of one verdict and
questionable + explicit is the chance the picture is at least questionable.
``strict`` flags it from 0.35 (about where the tagger's tags balance
precision and recall: SmilingWolf's model cards put that point at 0.25-0.38
across his v2 and v3 taggers; his demo lists tags from 0.35) and a picture the tagger is sure is *sensitive* (0.85:
swimsuits, underwear, cleavage — what strict's term list refuses in words);
``standard`` flags it only when more likely than not (0.5) and sends it
behind a spoiler, as it does every flagged picture.
"""

from __future__ import annotations

import csv
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import ImageCheckUnavailableError, library_reason
from engine.files import sha256_file
from engine.policy.levels import ALLOWED, Finding, Level, Verdict, checks_images, combine
from engine.policy.photo_check import ImageCheck, open_session

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)


class PictureCheck(Protocol):
    """What the job runner and ``generate`` need of an image check (:class:`ContentCheck`, :class:`~engine.policy.photo_check.ImageCheck`)."""

    def load(self) -> None:
        """Load the model (once)."""
        ...

    def check(self, image: Image, level: Level | str) -> Verdict:
        """The verdict on a picture the bot made, at ``level``."""
        ...


# --------------------------------------------------------------------------
# The photo detector's thresholds
# --------------------------------------------------------------------------

#: Least NudeNet score that flags a picture a user sends, per class. Above the highest score of the harmless drawn
#: pictures of ``bench/policy_image.py`` (README, "Content policy"): flat cartoon faces reach 0.44 as an exposed breast
#: and 0.81 as exposed buttocks (766 of 4,608 variants flagged at the old 0.4 / 0.6); genitals and anus stay under 0.07.
PHOTO_THRESHOLDS: Mapping[str, float] = {
    "FEMALE_GENITALIA_EXPOSED": 0.5,
    "MALE_GENITALIA_EXPOSED": 0.5,
    "FEMALE_BREAST_EXPOSED": 0.5,
    "ANUS_EXPOSED": 0.5,
    "BUTTOCKS_EXPOSED": 0.85,
}


# --------------------------------------------------------------------------
# The tagger's files
# --------------------------------------------------------------------------

#: The tagger's two files, in a hub repository or a local directory.
MODEL_FILE, TAGS_FILE = "model.onnx", "selected_tags.csv"
#: The category of the rating rows in ``selected_tags.csv``, and the ratings, mildest first.
RATING_CATEGORY = "9"
RATINGS = ("general", "sensitive", "questionable", "explicit")


@dataclass(frozen=True)
class PinnedTagger:
    """A WD tagger on the Hugging Face hub: its repository, the revision used and the sha256 of each file there."""

    repo_id: str
    revision: str
    model_sha256: str
    tags_sha256: str
    #: The model file's size, for the operator's messages.
    megabytes: int

    def sha256(self, filename: str) -> str:
        """The expected sha256 of ``filename`` (:data:`MODEL_FILE` or :data:`TAGS_FILE`)."""
        return self.model_sha256 if filename == MODEL_FILE else self.tags_sha256


#: The taggers that download by hub id (Apache-2.0, SmilingWolf), at these revisions and hashes (the hashes several
#: independent projects pin for these revisions; a download that does not match them is not used).
PINNED_TAGGERS: Mapping[str, PinnedTagger] = {
    tagger.repo_id: tagger
    for tagger in (
        PinnedTagger(
            "SmilingWolf/wd-vit-tagger-v3",
            "7f6b584d0bd3f55c4531f14ba3d4761b2bccdc0f",
            "35f23693620b668f4d53fd3c62bf65e40af739bc52c7eb0fbc49258b58d065b6",
            "298633d94d0031d2081c0893f29c82eab7f0df00b08483ba8f29d1e979441217",
            379,
        ),
        PinnedTagger(
            "SmilingWolf/wd-swinv2-tagger-v3",
            "627aef95638667ddcaa3ac8ae625e88ea5b02f51",
            "e6774bff34d43bd49f75a47db4ef217dce701c9847b546523eb85ff6dbba1db1",
            "298633d94d0031d2081c0893f29c82eab7f0df00b08483ba8f29d1e979441217",
            467,
        ),
    )
}
#: The default: the smallest and fastest of the v3 taggers.
DEFAULT_TAGGER = "SmilingWolf/wd-vit-tagger-v3"


@dataclass(frozen=True)
class TaggerSource:
    """Where the tagger comes from: a local directory (``local``), or a pinned hub model downloaded into ``models_dir``."""

    local: Path | None = None
    pinned: PinnedTagger | None = None
    models_dir: Path = Path("models")

    def __str__(self) -> str:
        return str(self.local) if self.local is not None else self.pinned.repo_id if self.pinned else "?"

    def files(self) -> tuple[Path, Path]:
        """``model.onnx`` and ``selected_tags.csv``: the local ones, or the hub's (downloaded once, sha256-checked).

        Raises :class:`~engine.errors.ImageCheckUnavailableError` saying what to put where.
        """
        if self.local is not None:
            return _local_files(self.local)
        assert self.pinned is not None
        return _hub_file(self.pinned, MODEL_FILE, self.models_dir), _hub_file(self.pinned, TAGS_FILE, self.models_dir)


def tagger_source(setting: str | Path, models_dir: Path) -> TaggerSource:
    """``POLICY_ANIME_MODEL``: a local directory with both files, or the id of a pinned hub model (:data:`PINNED_TAGGERS`).

    Checked at once (a start-up error, not the first picture's): a local
    directory must hold both files; a hub id must be one whose files are pinned.
    """
    text = str(setting).strip()
    if text in PINNED_TAGGERS:
        return TaggerSource(pinned=PINNED_TAGGERS[text], models_dir=Path(models_dir))
    path = Path(text).expanduser()
    if path.is_dir():
        _local_files(path)
        return TaggerSource(local=path, models_dir=Path(models_dir))
    raise ImageCheckUnavailableError(
        f"POLICY_ANIME_MODEL={text}: no such directory, and not a hub model whose files are pinned "
        f"({', '.join(PINNED_TAGGERS)}); put a WD tagger v3's {MODEL_FILE} and {TAGS_FILE} in a directory "
        f"and set POLICY_ANIME_MODEL to it"
    )


def _local_files(directory: Path) -> tuple[Path, Path]:
    model, tags = directory / MODEL_FILE, directory / TAGS_FILE
    missing = [path.name for path in (model, tags) if not path.is_file()]
    if missing:
        raise ImageCheckUnavailableError(
            f"POLICY_ANIME_MODEL={directory}: {' and '.join(missing)} missing there (the anime image check needs "
            f"a WD tagger v3 directory with {MODEL_FILE} and {TAGS_FILE}, e.g. from {DEFAULT_TAGGER})"
        )
    return model, tags


def how_to_get(pinned: PinnedTagger, models_dir: Path) -> str:
    """What to put where when ``pinned`` cannot be downloaded here (first in a message: a cut line keeps it)."""
    folder = models_dir / pinned.repo_id.split("/")[-1]
    return (
        f"on a machine with internet run `hf download {pinned.repo_id} {MODEL_FILE} {TAGS_FILE} --revision {pinned.revision} "
        f"--local-dir {folder}` ({pinned.megabytes} MB), put {folder} here and set POLICY_ANIME_MODEL to it "
        f"(or POLICY_IMAGE_CHECK=false: pictures unchecked)"
    )


def _hub_file(pinned: PinnedTagger, filename: str, models_dir: Path) -> Path:
    """``filename`` of ``pinned`` from the hub cache in ``models_dir`` (downloaded when missing), its sha256 checked."""
    from huggingface_hub import hf_hub_download

    def fetch(*, cached: bool) -> Path:
        return Path(
            hf_hub_download(pinned.repo_id, filename, revision=pinned.revision, cache_dir=models_dir, local_files_only=cached)
        )

    try:
        path = fetch(cached=True)
    except Exception:  # not in the cache yet
        log.info("downloading %s %s (revision %s) into %s", pinned.repo_id, filename, pinned.revision[:7], models_dir)
        try:
            path = fetch(cached=False)
        except Exception as error:
            reason = library_reason(error)
            raise ImageCheckUnavailableError(
                f"cannot download {pinned.repo_id} for the anime image check: {how_to_get(pinned, models_dir)}; {reason}"
            ) from error
    actual = sha256_file(path)
    if actual != pinned.sha256(filename):
        raise ImageCheckUnavailableError(
            f"{path} ({pinned.repo_id} {filename}) has sha256 {actual}, expected {pinned.sha256(filename)}: not used. "
            f"Delete it to download it again, or {how_to_get(pinned, models_dir)}"
        )
    return path


# --------------------------------------------------------------------------
# The anime rating check
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingThresholds:
    """When a rating flags a picture at one level: questionable + explicit from ``at_least_questionable``, sensitive from ``sensitive``."""

    at_least_questionable: float
    sensitive: float | None = None


#: Per level (README, "Content policy"): strict refuses from these, standard shows a spoiler; ``off`` never looks.
RATING_THRESHOLDS: Mapping[Level, RatingThresholds] = {
    Level.STRICT: RatingThresholds(at_least_questionable=0.35, sensitive=0.85),
    Level.STANDARD: RatingThresholds(at_least_questionable=0.5),
}
#: The tagger's input side when its model does not say.
TAGGER_SIDE = 448


def tagger_input(image: Image, side: int = TAGGER_SIDE) -> Any:
    """``image`` as the WD tagger v3 takes it: a 1 x side x side x 3 float32 array, BGR, 0..255.

    As SmilingWolf's own demo prepares it: transparency composited on white,
    the picture centred on a white square as wide as its longest side, resized
    (bicubic) to ``side``, RGB turned to BGR; no scaling to 0..1, no mean.
    """
    import numpy as np
    from PIL import Image as PILImage

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        canvas = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image.convert("RGBA"))
        image = canvas
    rgb = image.convert("RGB")
    longest = max(rgb.size)
    square = PILImage.new("RGB", (longest, longest), (255, 255, 255))
    square.paste(rgb, ((longest - rgb.width) // 2, (longest - rgb.height) // 2))
    if longest != side:
        square = square.resize((side, side), PILImage.Resampling.BICUBIC)
    pixels = np.asarray(square, dtype=np.float32)[:, :, ::-1]
    return np.ascontiguousarray(pixels)[None]


class AnimeRatingCheck:
    """The WD tagger v3's ratings of a picture, and what they mean at each level; loads on first use, thread-safe.

    ``source`` (:func:`tagger_source`) says where the model comes from;
    ``thresholds`` when a rating flags (:data:`RATING_THRESHOLDS`).
    """

    def __init__(
        self, source: TaggerSource, *, thresholds: Mapping[Level, RatingThresholds] = RATING_THRESHOLDS, threads: int = 0
    ) -> None:
        self.source = source
        self.thresholds = dict(thresholds)
        self.threads = threads
        self._session: Any = None
        self._ratings: dict[str, int] = {}
        self._side = TAGGER_SIDE
        self._input = ""
        self._lock = threading.Lock()

    def load(self) -> None:
        """Fetch (first use) and open the model, and read which outputs are the ratings. Raises ImageCheckUnavailableError."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            model, tags = self.source.files()
            ratings, rows = _rating_rows(tags)
            # a GPU when onnxruntime-gpu is installed: ~3 s a picture on a small CPU
            session = open_session(model, self.threads, "the anime image check's model", gpu=True)
            (entry,), (exit_,) = session.get_inputs(), session.get_outputs()
            shape, width = list(entry.shape), exit_.shape[-1]
            if len(shape) != 4 or shape[-1] != 3 or (isinstance(width, int) and width != rows):
                raise ImageCheckUnavailableError(
                    f"{model} is not a WD tagger v3 for {tags}: input {shape} (want batch x side x side x 3), "
                    f"{width} outputs for {rows} tags"
                )
            if isinstance(shape[1], int):
                self._side = shape[1]
            self._input, self._ratings, self._session = entry.name, ratings, session
            log.info("anime image check: %s (%d tags, %d px, %s)", self.source, rows, self._side, session.get_providers()[0])

    def ratings(self, image: Image) -> dict[str, float]:
        """The tagger's four ratings of ``image`` (probabilities, 0..1)."""
        self.load()
        (output,) = self._session.run(None, {self._input: tagger_input(image, self._side)})[:1]
        scores = output[0]
        return {rating: float(scores[index]) for rating, index in self._ratings.items()}

    def findings(self, image: Image, level: Level | str) -> tuple[Finding, ...]:
        """What flags ``image`` at ``level`` (``rating:questionable 0.41``, …), most likely first; nothing when it passes."""
        thresholds = self.thresholds.get(Level(level))
        if thresholds is None:
            return ()
        ratings = self.ratings(image)
        found: list[Finding] = []
        if ratings["questionable"] + ratings["explicit"] >= thresholds.at_least_questionable:
            found += [Finding(f"rating:{r}", ratings[r]) for r in ("explicit", "questionable") if ratings[r] >= 0.01]
        if thresholds.sensitive is not None and ratings["sensitive"] >= thresholds.sensitive:
            found.append(Finding("rating:sensitive", ratings["sensitive"]))
        return tuple(sorted(found, key=lambda f: -f.score))

    def check(self, image: Image, level: Level | str) -> Verdict:
        """The verdict: ``strict`` refuses a flagged picture, ``standard`` allows it behind a spoiler; ``off`` does not look."""
        level = Level(level)
        if not checks_images(level):
            return ALLOWED[level]
        findings = self.findings(image, level)
        if not findings:
            return ALLOWED[level]
        if level is Level.STANDARD:
            return Verdict(True, level, findings=findings, spoiler=True)
        return Verdict(False, level, findings=findings)


def _rating_rows(tags: Path) -> tuple[dict[str, int], int]:
    """The output index of each rating in ``selected_tags.csv`` (its category-9 rows), and how many rows it has."""
    try:
        with tags.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ImageCheckUnavailableError(f"{tags} cannot be read: {error}") from error
    ratings = {row.get("name", ""): index for index, row in enumerate(rows) if row.get("category") == RATING_CATEGORY}
    missing = [rating for rating in RATINGS if rating not in ratings]
    if missing:
        raise ImageCheckUnavailableError(
            f"{tags} is not a WD tagger v3 tag list: no rating rows (category {RATING_CATEGORY}) for {', '.join(missing)}"
        )
    return {rating: ratings[rating] for rating in RATINGS}, len(rows)


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------


class ContentCheck:
    """A pipeline's image check: drawn pictures by the tagger's ratings; a picture a user sends by those and NudeNet.

    ``drawn`` judges everything the bot makes (:meth:`check`); ``photos``
    (NudeNet at :data:`PHOTO_THRESHOLDS`) joins it for a user's picture
    (:meth:`check_photo`), when there is one.
    """

    def __init__(self, drawn: AnimeRatingCheck, photos: ImageCheck | None = None) -> None:
        self.drawn = drawn
        self.photos = photos

    def load(self) -> None:
        """Load both models (a worker's start-up; otherwise they load on first use)."""
        self.drawn.load()
        if self.photos is not None:
            self.photos.load()

    def check(self, image: Image, level: Level | str) -> Verdict:
        """The verdict on a picture the bot drew or styled: the tagger's."""
        return self.drawn.check(image, level)

    def check_photo(self, image: Image, level: Level | str) -> Verdict:
        """The verdict on a picture a user sent: flagged when either check flags it (their findings together)."""
        verdicts = [self.drawn.check(image, level)]
        if self.photos is not None and checks_images(level):
            verdicts.append(self.photos.check(image, level))
        return combine(verdicts, level)


def check_photo(check: PictureCheck) -> Callable[[Image, Level | str], Verdict]:
    """How ``check`` judges a picture a user sent: :meth:`ContentCheck.check_photo`, or a plain check's ``check``."""
    return check.check_photo if isinstance(check, ContentCheck) else check.check
