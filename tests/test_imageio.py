"""engine.image.imageio.open_image against hostile and huge pictures: pixel limit from the header, reduced-scale decoding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from engine.errors import ImageTooManyPixelsError
from engine.image.imageio import DEFAULT_MAX_PIXELS, open_image
from handlers.i18n import error_text


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def bomb(side: int = 9000) -> bytes:
    """A single-colour ``side`` x ``side`` PNG: a few KB on disk, ``side``² bytes or more once decoded."""
    return encoded(Image.new("1", (side, side), 1), "PNG", optimize=True)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image file gets decoded."""
    def load(self: ImageFile.ImageFile):
        raise AssertionError(f"decoded a {self.size} {self.format} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_a_decompression_bomb_is_refused_from_its_header(no_decoding: None) -> None:
    data = bomb()
    assert len(data) < 50_000
    with pytest.raises(ImageTooManyPixelsError) as raised:
        open_image(data)
    error = raised.value
    assert error_text(error.key, "en", error.params) == "That picture is too large (9000×9000 px). Send one up to 40 megapixels."
    assert error.params == {"width": 9000, "height": 9000, "limit_mp": 40.0}
    assert error_text(error.key, "zh-Hans", error.params) == "图片尺寸太大（9000×9000 像素），请发送不超过 40 百万像素的图片。"


def test_the_limit_is_a_parameter(no_decoding: None) -> None:
    photo = encoded(Image.new("RGB", (50, 40)), "PNG")
    with pytest.raises(ImageTooManyPixelsError) as info:
        open_image(photo, max_pixels=1000)
    assert "(50×40 px). Send one up to 0.001 megapixels" in error_text(info.value.key, "en", info.value.params)


@pytest.mark.parametrize("side", [40, 100])  # 1600 px: Pillow only warns; 10,000 px: Pillow refuses to open it
def test_pillows_own_limit_is_respected(monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    photo = encoded(Image.new("RGB", (side, side)), "PNG")
    with pytest.raises(ImageTooManyPixelsError) as raised:
        open_image(photo, max_pixels=None)
    assert raised.value.params == {"width": side, "height": side, "limit_mp": 0.001}


def test_default_limit_lets_a_big_photo_through() -> None:
    assert DEFAULT_MAX_PIXELS == 40_000_000
    assert open_image(encoded(Image.new("RGB", (6000, 4000), (10, 20, 30)), "JPEG")).size == (6000, 4000)


def test_a_large_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def load(self: JpegImagePlugin.JpegImageFile):
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    photo = encoded(Image.new("RGB", (4000, 3000), (200, 120, 40)), "JPEG", quality=90)
    image = open_image(photo, max_side=512)
    assert image.size == (512, 384) and image.mode == "RGB"
    assert set(decoded) == {(1000, 750)}, "DCT scaling: 1/4 is the smallest scale still >= 512x384"
    assert image.getpixel((256, 192)) == pytest.approx((200, 120, 40), abs=3)


def test_a_large_png_is_shrunk_to_max_side_with_transparency_on_white() -> None:
    photo = encoded(Image.new("RGBA", (3000, 1000), (255, 0, 0, 0)), "PNG")
    image = open_image(photo, max_side=300)
    assert image.size == (300, 100) and image.getpixel((150, 50)) == (255, 255, 255)


def test_a_shrunk_photo_is_upright_once(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise: portrait
    stored = Image.new("RGB", (400, 200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 200, 200))  # left half red -> top half once upright
    path = tmp_path / "rotated.jpg"
    stored.save(path, "JPEG", exif=exif.tobytes())
    image = open_image(path, max_side=100)
    assert image.size == (50, 100)
    assert image.getpixel((25, 10))[0] > 200 and image.getpixel((25, 90))[2] > 200
    assert open_image(image).size == (50, 100), "an upright result is not rotated again"
