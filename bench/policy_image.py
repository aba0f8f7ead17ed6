"""False positives of the content policy's image checks on harmless drawn pictures, by hand.

    python -m bench.policy_image                  # NudeNet (the nudenet wheel's 320n) on every picture
    python -m bench.policy_image --verbose        # ... and every picture's scores
    POLICY_ANIME_MODEL=models/wd-vit-tagger-v3 python -m bench.policy_image   # and the WD tagger's ratings

Draws harmless pictures with Pillow — the flat cartoon face (a skin-coloured
oval with two dots) in every variant of :func:`cartoon_faces`, emoji-like
shapes, anime-style drawings — and renders Noto Color Emoji illustrations
(when ``/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf`` is installed),
then prints, per group, the highest score each flagged NudeNet class reached
and on which picture: what the thresholds of ``engine.policy.image_check`` are set
from (README, "Content policy"). With ``POLICY_ANIME_MODEL`` set to a local
WD tagger v3 directory (``model.onnx`` + ``selected_tags.csv``) it prints the
tagger's highest ratings too; without one they are not measured (the tagger is
never downloaded here).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from engine.policy.image_check import PHOTO_THRESHOLDS, RATINGS, AnimeRatingCheck, tagger_source  # noqa: E402
from engine.policy.photo_check import DEFAULT_THRESHOLDS, ImageCheck, resolve_model  # noqa: E402

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
#: Harmless illustrations: people, bodies at rest, food and animals (the ones of the README's first measurement first).
EMOJI = (
    "👧 👸 🧜\u200d♀️ 🧚 🛀 🏊 💃 🤱 🧖 👙 💆 🍑 "
    "😀 😊 🙂 😍 🥰 😘 😴 👶 🧒 👦 👩 👨 👵 🧑 👱 🙋 🙆 🤗 👫 💏 🤰 🧘 🏄 🤸 "
    "👍 👌 ✋ 👂 👃 👄 👅 🦵 🦶 💪 🍒 🍌 🍆 🥚 🍩 🥯 🍞 🥐 🍎 🐷 🐱 🐶 🌸 ❤️ ☀️"
).split()
SKINS = ((255, 224, 196), (255, 205, 170), (240, 190, 170), (224, 172, 105))
DOTS = ("black", (90, 50, 40), (220, 120, 120))


def cartoon_face(
    size: tuple[int, int] = (512, 512),
    *,
    width: float = 0.6,
    skin=SKINS[0],
    dot=0.03,
    eyes=0.45,
    apart=0.1,
    dots="black",
    mouth=False,
    outline=False,
) -> Image.Image:
    """The flat cartoon face: a skin-coloured oval (``width`` of the picture wide) on white with two dots (a mouth, an outline)."""
    w, h = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top = (1 - width) / 2, 0.15 if width < 0.8 else 0.05
    box = [left * w, top * h, (1 - left) * w, (1 - top) * h]
    draw.ellipse(box, fill=skin, outline="black" if outline else None, width=max(1, w // 170))
    r = dot * min(w, h)
    for cx in (0.5 - apart, 0.5 + apart):
        draw.ellipse([cx * w - r, eyes * h - r, cx * w + r, eyes * h + r], fill=dots)
    if mouth:
        draw.arc([0.4 * w, 0.55 * h, 0.6 * w, 0.7 * h], 20, 160, fill="black", width=max(1, w // 100))
    return image


def cartoon_faces() -> Iterator[tuple[str, Image.Image]]:
    """Every variant: 4 sizes x 2 widths x 4 skins x 3 dot colours x 3 dot sizes x 2 eye heights x 2 gaps x mouth x outline (4,608)."""
    for size, width, skin, dots, dot, eyes, apart, mouth, outline in itertools.product(
        ((64, 64), (128, 128), (256, 256), (512, 512)), (0.6, 0.9), SKINS, DOTS, (0.02, 0.04, 0.06), (0.4, 0.5), (0.1, 0.15), (False, True), (False, True)
    ):
        extras = (" mouth" if mouth else "") + (" outline" if outline else "")
        name = f"face {size[0]}px oval {width} skin{skin} dots{dots} r{dot} y{eyes} dx{apart}{extras}"
        yield name, cartoon_face(size, width=width, skin=skin, dot=dot, eyes=eyes, apart=apart, dots=dots, mouth=mouth, outline=outline)


def shapes() -> Iterator[tuple[str, Image.Image]]:
    """Emoji-like flat shapes: a smiley, a skin disc, a peach, a heart, an egg, a hand, a plain skin field, noise."""
    smiley = Image.new("RGB", (512, 512), "white")
    d = ImageDraw.Draw(smiley)
    d.ellipse([56, 56, 456, 456], fill=(255, 204, 51), outline=(200, 150, 0), width=6)
    d.ellipse([170, 170, 210, 240], fill=(90, 60, 20))
    d.ellipse([302, 170, 342, 240], fill=(90, 60, 20))
    d.arc([150, 220, 362, 380], 20, 160, fill=(90, 60, 20), width=14)
    yield "smiley", smiley
    disc = Image.new("RGB", (512, 512), "white")
    ImageDraw.Draw(disc).ellipse([96, 96, 416, 416], fill=SKINS[0])
    yield "skin disc", disc
    peach = Image.new("RGB", (512, 512), "white")
    d = ImageDraw.Draw(peach)
    d.ellipse([80, 120, 280, 420], fill=(255, 170, 130))
    d.ellipse([232, 120, 432, 420], fill=(255, 170, 130))
    d.line([256, 150, 256, 380], fill=(220, 120, 100), width=6)
    d.ellipse([230, 60, 330, 130], fill=(90, 170, 70))
    yield "peach shape", peach
    heart = Image.new("RGB", (512, 512), "white")
    d = ImageDraw.Draw(heart)
    d.ellipse([96, 120, 266, 290], fill=(230, 40, 60))
    d.ellipse([246, 120, 416, 290], fill=(230, 40, 60))
    d.polygon([(104, 230), (408, 230), (256, 430)], fill=(230, 40, 60))
    yield "heart", heart
    egg = Image.new("RGB", (512, 512), (120, 180, 230))
    ImageDraw.Draw(egg).ellipse([160, 80, 352, 432], fill=(250, 235, 215))
    yield "egg on blue", egg
    hand = Image.new("RGB", (512, 512), "white")
    d = ImageDraw.Draw(hand)
    d.rounded_rectangle([160, 220, 352, 460], 60, fill=SKINS[1])
    for i, x in enumerate((170, 215, 260, 305)):
        d.rounded_rectangle([x, 90 + 15 * abs(i - 1.5), x + 38, 260], 19, fill=SKINS[1])
    yield "hand", hand
    yield "skin field", Image.new("RGB", (320, 320), SKINS[0])
    yield "noise", Image.effect_noise((512, 512), 64).convert("RGB")


def drawings() -> Iterator[tuple[str, Image.Image]]:
    """Anime-style drawings: the tests' girl in a red dress, a girl in a one-piece swimsuit on a beach, a shirtless boy."""
    skin = (255, 224, 196)
    girl = Image.new("RGB", (512, 768), (180, 220, 255))
    d = ImageDraw.Draw(girl)
    d.rectangle([0, 600, 512, 768], fill=(120, 200, 120))
    d.polygon([(256, 250), (140, 560), (372, 560)], fill=(230, 60, 90))
    for x in (225, 285):
        d.rectangle([x - 12, 560, x + 12, 690], fill=skin)
    d.ellipse([160, 70, 352, 280], fill=(250, 200, 60))
    d.ellipse([171, 85, 341, 265], fill=skin)
    for x in (220, 292):
        d.ellipse([x - 19, 165, x + 19, 205], fill="white", outline="black", width=3)
        d.ellipse([x - 12, 172, x + 12, 202], fill=(60, 140, 255))
    yield "girl in a dress", girl
    beach = Image.new("RGB", (512, 768), (150, 210, 250))
    d = ImageDraw.Draw(beach)
    d.rectangle([0, 520, 512, 768], fill=(240, 220, 170))
    d.ellipse([196, 90, 316, 220], fill=skin)
    d.rectangle([236, 215, 276, 250], fill=skin)
    d.rounded_rectangle([190, 245, 322, 480], 40, fill=(40, 90, 200))
    for x in (150, 322):
        d.rounded_rectangle([x, 250, x + 40, 430], 20, fill=skin)
    for x in (205, 270):
        d.rounded_rectangle([x, 470, x + 38, 690], 19, fill=skin)
    d.ellipse([226, 140, 246, 160], fill="black")
    d.ellipse([266, 140, 286, 160], fill="black")
    yield "swimsuit on a beach", beach
    boy = Image.new("RGB", (512, 768), (200, 230, 200))
    d = ImageDraw.Draw(boy)
    d.ellipse([196, 80, 316, 210], fill=skin)
    d.rounded_rectangle([176, 220, 336, 450], 30, fill=skin)
    d.rectangle([176, 440, 336, 600], fill=(60, 60, 120))
    d.ellipse([226, 130, 246, 150], fill="black")
    d.ellipse([266, 130, 286, 150], fill="black")
    yield "shirtless boy", boy
    studio = ROOT / "docs" / "studio.png"
    if studio.is_file():
        yield "docs/studio.png", Image.open(studio).convert("RGB")


def emoji() -> Iterator[tuple[str, Image.Image]]:
    """Noto Color Emoji glyphs, drawn at their bitmap size (109 px) and scaled to 512 px wide."""
    if not EMOJI_FONT.is_file():
        return
    font = ImageFont.truetype(str(EMOJI_FONT), 109)
    for glyph in EMOJI:
        tile = Image.new("RGB", (136, 128), "white")
        ImageDraw.Draw(tile).text((0, 0), glyph, font=font, embedded_color=True)
        yield f"emoji {glyph}", tile.resize((512, 482), Image.Resampling.LANCZOS)


GROUPS = {"cartoon faces": cartoon_faces, "shapes": shapes, "drawings": drawings, "emoji": emoji}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print every picture's scores")
    args = parser.parse_args()
    nudenet = ImageCheck(resolve_model(None))
    flagged = tuple(DEFAULT_THRESHOLDS)
    tagger = None
    if os.environ.get("POLICY_ANIME_MODEL"):
        tagger = AnimeRatingCheck(tagger_source(os.environ["POLICY_ANIME_MODEL"], ROOT / "models"))
    print("NudeNet 320n: the highest score of each flagged class (the class's old drawn / new photo threshold)")
    print("  " + ", ".join(f"{label} {DEFAULT_THRESHOLDS[label]}/{PHOTO_THRESHOLDS[label]}" for label in flagged))
    if tagger is None:
        print("WD tagger: not measured (set POLICY_ANIME_MODEL to a local wd-*-tagger-v3 directory)")
    started, count = time.perf_counter(), 0
    for group, pictures in GROUPS.items():
        best: dict[str, tuple[float, str]] = {}
        above_old = 0
        for name, picture in pictures():
            count += 1
            scores = nudenet.scores(picture)
            if any(scores.get(label, 0.0) >= DEFAULT_THRESHOLDS[label] for label in flagged):
                above_old += 1
            seen = {label: scores.get(label, 0.0) for label in flagged}
            if tagger is not None:
                seen |= {f"rating:{rating}": score for rating, score in tagger.ratings(picture).items() if rating != "general"}
            for label, score in seen.items():
                if score > best.get(label, (-1.0, ""))[0]:
                    best[label] = (score, name)
            if args.verbose:
                print(f"    {name}: " + ", ".join(f"{label} {score:.2f}" for label, score in seen.items() if score >= 0.01))
        if not best:
            print(f"{group}: nothing to measure here")
            continue
        print(f"{group}: {above_old} flagged at the old thresholds")
        for label, (score, name) in best.items():
            print(f"  {label:26} {score:.3f}  ({name})")
    print(f"{count} pictures in {time.perf_counter() - started:.1f} s")
    if tagger is not None:
        print("WD tagger ratings: " + ", ".join(RATINGS))


if __name__ == "__main__":
    main()
