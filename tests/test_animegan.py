"""AnimeGANv2 engine: strict checkpoint loading, sha256 pinning, downloads, any image, both backends."""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import Cancelled, ImageError, ModelUnavailableError, UnknownStyleError, UserError
from engine.files import atomic_write, sha256_file
from engine.image import animegan_model as gen
from engine.image import styles
from engine.image.animegan import NHWC_SIZE_MULTIPLE, ORT_ALLOW_SPINNING, AnimeGAN, onnx_providers, open_image
from engine.image.styles import BUNDLED_REGISTRY, StyleRegistry
from tests.support.animegan_weights import (
    official_layout,
    random_state_dict,
    write_checkpoint,
    write_registry,
)
from tests.support.images import assert_images_close, assert_images_differ
from tests.support.onnx_style import BLOCK, add_nhwc_style, expected_pixels, nhwc_style_model

HUB_URL = "https://github.com/bryandlee/animegan2-pytorch/raw/main/weights/{}.pt"


def noise_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode, 1)
    data = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(data[..., 0] if channels == 1 else data, mode)


@pytest.fixture
def ckpt_dir(tmp_path: Path, animegan_checkpoints_dir: Path) -> Path:
    """A private, writable copy of the session checkpoints (weights + registry only)."""
    target = tmp_path / "checkpoints"
    target.mkdir()
    for name in ("styles.json", "face_paint_512_v2.pt", "paprika.pt"):
        shutil.copy(animegan_checkpoints_dir / name, target / name)
    return target


@pytest.fixture(scope="module")
def torch_engine(animegan_checkpoints_dir: Path) -> AnimeGAN:
    return AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="torch", max_side=256, download=False)


@pytest.fixture(scope="module")
def onnx_engine(animegan_checkpoints_dir: Path) -> AnimeGAN:
    return AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="onnx", max_side=256, download=False, threads=1)


# ----- the network and its checkpoint format -----------------------------------------------


def test_generator_matches_the_official_state_dict_layout() -> None:
    assert gen.expected_keys() == dict(official_layout())


def test_official_format_checkpoint_loads_through_the_engine(torch_engine: AnimeGAN) -> None:
    loaded = torch_engine._get("face_paint_512_v2")
    weights = random_state_dict(0)
    model = loaded.runner.model
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value.float().contiguous(), weights[key])


def test_output_is_tanh_range_and_same_size() -> None:
    model = gen.build_generator(random_state_dict(3))
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 20, 36) * 2 - 1)
    assert out.shape == (1, 3, 20, 36)
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda sd: sd.pop("block_c.3.layers.1.1.bias"), "missing keys"),
        (lambda sd: sd.__setitem__("block_f.0.weight", torch.zeros(1)), "unexpected keys"),
        (lambda sd: sd.__setitem__("out_layer.0.weight", torch.zeros(3, 16, 1, 1)), "size mismatch"),
    ],
    ids=["missing", "extra", "shape"],
)
def test_state_dict_with_wrong_keys_is_rejected(tmp_path: Path, mutate, message: str) -> None:
    weights = random_state_dict(0)
    mutate(weights)
    sha = write_checkpoint(tmp_path / "bad.pt", weights)
    write_registry(tmp_path, {"bad": {"file": "bad.pt", "sha256": sha}})
    engine = AnimeGAN(tmp_path, device="cpu", backend="torch", download=False)
    with pytest.raises(ModelUnavailableError, match=message):
        engine.stylize(noise_image(16, 16), "bad")


def test_non_state_dict_pickle_is_rejected(tmp_path: Path) -> None:
    torch.save({"model": random_state_dict(0)}, tmp_path / "wrapped.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    write_registry(
        tmp_path,
        {
            "wrapped": {"file": "wrapped.pt", "sha256": sha256_file(tmp_path / "wrapped.pt")},
            "text": {"file": "text.pt", "sha256": sha256_file(tmp_path / "text.pt")},
        },
    )
    engine = AnimeGAN(tmp_path, device="cpu", backend="torch", download=False)
    with pytest.raises(ModelUnavailableError, match="state_dict"):
        engine.load("wrapped")
    with pytest.raises(ModelUnavailableError, match="state_dict"):
        engine.load("text")


# ----- registry -------------------------------------------------------------------------


def test_bundled_registry_lists_the_official_styles() -> None:
    registry = StyleRegistry.load(BUNDLED_REGISTRY)
    names = [s.name for s in registry.styles]
    assert names == ["face_paint_512_v2", "face_paint_512_v1", "celeba_distill", "paprika", "hayao", "shinkai"]
    assert registry.get("face_paint").name == "face_paint_512_v2"
    assert registry.get("宫崎骏").name == "hayao" and registry.get("新海诚").name == "shinkai"
    for style in registry.styles:
        assert "non-commercial" in style.licence
        if style.name in ("hayao", "shinkai"):  # the authors' TF generators as ONNX, pinned mirror revisions
            assert style.format == styles.ONNX_NHWC
            assert style.file == f"AnimeGANv2_{style.name.capitalize()}.onnx"
            assert style.url and style.url.startswith(f"https://huggingface.co/vumichien/AnimeGANv2_{style.name.capitalize()}/resolve/")
            assert style.url.endswith("/" + style.file)
            assert style.sha256 is not None and len(style.sha256) == 64  # published (Git LFS oid)
        else:
            assert style.format == styles.TORCH_STATE_DICT
            assert style.url == HUB_URL.format(style.name)
            assert style.file == f"{style.name}.pt"
            assert style.sha256 is None or len(style.sha256) == 64


BUNDLED_NAMES = {
    "face_paint_512_v2": ("Portrait (face paint v2)", "人像（face paint v2）"),
    "face_paint_512_v1": ("Portrait (face paint v1)", "人像（face paint v1）"),
    "celeba_distill": ("Webtoon (celeba distill)", "条漫（celeba distill）"),
    "paprika": ("Paprika", "红辣椒 Paprika"),
    "hayao": ("Hayao", "宫崎骏 Hayao"),
    "shinkai": ("Shinkai", "新海诚 Shinkai"),
}


def test_bundled_styles_have_display_names_and_blurbs_in_english_and_chinese() -> None:
    registry = StyleRegistry.load(BUNDLED_REGISTRY)
    for style in registry.styles:
        en, zh = BUNDLED_NAMES[style.name]
        assert (style.display_name("en"), style.display_name("zh")) == (en, zh)
        assert dict(style.names).keys() == dict(style.blurbs).keys() == {"en", "zh"}
        for lang in ("en", "zh"):
            blurb = style.blurb(lang)
            assert blurb and "\n" not in blurb and blurb != style.description
        assert any("\u4e00" <= ch <= "\u9fff" for ch in style.blurb("zh")), "the Chinese blurb is Chinese"
    for lang in ("en", "zh"):
        shown = [s.display_name(lang) for s in registry.styles]
        assert len(set(shown)) == len(shown), f"two styles look the same in {lang}"


def test_display_texts_follow_the_language_tag(tmp_path: Path) -> None:
    write_registry(
        tmp_path,
        {"hayao": {"file": "h.pt", "names": {"en": "Hayao", "zh": "宫崎骏 Hayao"}, "blurbs": {"en": "Soft.", "zh": "柔和。"}}},
    )
    style = StyleRegistry.load(tmp_path / "styles.json").get("hayao")
    for tag in ("zh", "zh-CN", "zh_TW", "ZH-Hant"):
        assert style.display_name(tag) == "宫崎骏 Hayao" and style.blurb(tag) == "柔和。"
    for tag in ("en", "en-GB", "fr", "", None):
        assert style.display_name(tag) == "Hayao" and style.blurb(tag) == "Soft."


def test_display_texts_fall_back_to_english_then_the_id(tmp_path: Path) -> None:
    write_registry(
        tmp_path,
        {
            "english_only": {"file": "e.pt", "names": {"en": "English only"}, "blurbs": {"en": "One line."}},
            "chinese_only": {"file": "c.pt", "names": {"zh": "只有中文"}},
            "bare": {"file": "b.pt", "description": "operator's note"},
        },
    )
    registry = StyleRegistry.load(tmp_path / "styles.json")
    english = registry.get("english_only")
    assert english.display_name("zh") == "English only" and english.blurb("zh") == "One line."
    chinese = registry.get("chinese_only")
    assert chinese.display_name("zh") == "只有中文"
    assert chinese.display_name("en") == "chinese_only"  # no English: the id, never another language
    bare = registry.get("bare")
    assert bare.display_name("en") == bare.display_name("zh") == "bare"
    assert bare.blurb("zh") == "operator's note"


@pytest.mark.parametrize(
    "texts",
    [
        {"names": "Hayao"},
        {"names": {"en": ""}},
        {"names": {"en": "two\nlines"}},
        {"blurbs": {"en": 3}},
        {"blurbs": {"english!": "x"}},
        {"names": {"zh": "甲", "ZH": "乙"}},
    ],
    ids=["not-object", "empty", "multiline", "not-text", "bad-language", "duplicate-language"],
)
def test_invalid_display_texts_are_rejected(tmp_path: Path, texts: dict) -> None:
    write_registry(tmp_path, {"x": {"file": "x.pt", **texts}})
    with pytest.raises(ModelUnavailableError, match=r"styles\.json"):
        StyleRegistry.load(tmp_path / "styles.json")


def test_directory_without_registry_uses_the_bundled_one(tmp_path: Path) -> None:
    engine = AnimeGAN(tmp_path, device="cpu", backend="torch", download=False)
    assert "paprika" in [s.name for s in engine.styles]


def test_unknown_style_is_a_user_error_listing_the_styles(torch_engine: AnimeGAN) -> None:
    with pytest.raises(UnknownStyleError) as info:
        torch_engine.stylize(noise_image(8, 8), "hayao")
    err = info.value
    assert isinstance(err, UserError) and err.key == "style.unknown"
    assert err.params["style"] == "hayao"
    assert "face_paint_512_v2" in err.params["styles"] and "paprika" in err.params["styles"]


def test_style_names_are_forgiving(torch_engine: AnimeGAN) -> None:
    assert torch_engine.style("Face-Paint").name == "face_paint_512_v2"
    assert torch_engine.style(" PAPRIKA ").name == "paprika"


@pytest.mark.parametrize(
    "entry",
    [
        {"file": "../escape.pt"},
        {"file": "x.pt", "sha256": "abc"},
        {"file": "x.pt", "url": "file:///etc/passwd"},
        {"file": "x.pt", "format": "tensorflow"},
        {"file": "x.onnx"},
        {"file": "x.pt", "format": "onnx-nhwc"},
        {"file": "x.0123456789ab.onnx", "format": "onnx-nhwc"},
    ],
    ids=["path", "sha", "url", "format", "onnx-without-format", "nhwc-not-onnx", "nhwc-like-an-export"],
)
def test_invalid_registry_entries_are_rejected(tmp_path: Path, entry: dict) -> None:
    write_registry(tmp_path, {"x": entry})
    with pytest.raises(ModelUnavailableError, match=r"styles\.json"):
        StyleRegistry.load(tmp_path / "styles.json")


def test_duplicate_alias_is_rejected(tmp_path: Path) -> None:
    write_registry(tmp_path, {"a": {"file": "a.pt", "aliases": ["b"]}, "b": {"file": "b.pt"}})
    with pytest.raises(ModelUnavailableError, match="twice"):
        StyleRegistry.load(tmp_path / "styles.json")


# ----- sha256 verification and trust on first use ------------------------------------------


def test_sha256_mismatch_is_rejected(ckpt_dir: Path) -> None:
    registry = json.loads((ckpt_dir / "styles.json").read_text())
    registry["styles"]["paprika"]["sha256"] = "0" * 64
    (ckpt_dir / "styles.json").write_text(json.dumps(registry))
    engine = AnimeGAN(ckpt_dir, device="cpu", backend="torch", download=False)
    with pytest.raises(ModelUnavailableError) as info:
        engine.load("paprika")
    text = str(info.value)
    assert "sha256" in text and "0" * 64 in text and str(ckpt_dir / "paprika.pt") in text
    assert not (ckpt_dir / "paprika.pt").exists()  # never loaded again
    assert (ckpt_dir / "paprika.pt.rejected").exists()  # kept for inspection


def test_unpinned_checkpoint_is_pinned_on_first_use_then_enforced(tmp_path: Path) -> None:
    sha = write_checkpoint(tmp_path / "mine.pt", seed=5)
    write_registry(tmp_path, {"mine": {"file": "mine.pt", "sha256": None}})
    AnimeGAN(tmp_path, device="cpu", backend="torch", download=False).load("mine")
    pin = tmp_path / "mine.pt.sha256"
    assert pin.read_text().split() == [sha, "mine.pt"]

    AnimeGAN(tmp_path, device="cpu", backend="torch", download=False).load("mine")  # same file: fine
    write_checkpoint(tmp_path / "mine.pt", seed=6)  # swapped behind our back
    with pytest.raises(ModelUnavailableError, match="pinned on first use"):
        AnimeGAN(tmp_path, device="cpu", backend="torch", download=False).load("mine")


def test_unpinned_file_that_is_not_a_generator_is_not_pinned(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"<html>rate limited</html>")
    write_registry(tmp_path, {"junk": {"file": "junk.pt"}})
    with pytest.raises(ModelUnavailableError):
        AnimeGAN(tmp_path, device="cpu", backend="torch", download=False).load("junk")
    assert not (tmp_path / "junk.pt.sha256").exists()


# ----- download on first use ------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A local HTTP server serving ``files`` (path -> bytes); yields (base URL, files)."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


def _served_checkpoint(tmp_path: Path, files: dict[str, bytes], seed: int = 2) -> tuple[bytes, str]:
    source = tmp_path / "served.pt"
    sha = write_checkpoint(source, seed=seed)
    files["/weights/paprika.pt"] = source.read_bytes()
    return source.read_bytes(), sha


def test_download_on_first_use(tmp_path: Path, http_server) -> None:
    base, files = http_server
    data, sha = _served_checkpoint(tmp_path, files)
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    write_registry(ckpts, {"paprika": {"file": "paprika.pt", "sha256": sha, "url": f"{base}/weights/paprika.pt"}})
    engine = AnimeGAN(ckpts, device="cpu", backend="torch")
    assert not engine.is_available("paprika")
    out = engine.stylize(noise_image(24, 16), "paprika")
    assert out.size == (24, 16)
    assert (ckpts / "paprika.pt").read_bytes() == data
    assert sorted(p.name for p in ckpts.iterdir()) == ["paprika.pt", "styles.json"]  # no temp files left


def test_download_without_known_hash_is_pinned(tmp_path: Path, http_server) -> None:
    base, files = http_server
    _, sha = _served_checkpoint(tmp_path, files)
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    write_registry(ckpts, {"paprika": {"file": "paprika.pt", "sha256": None, "url": f"{base}/weights/paprika.pt"}})
    AnimeGAN(ckpts, device="cpu", backend="torch").load("paprika")
    assert (ckpts / "paprika.pt.sha256").read_text().split()[0] == sha


def test_download_works_when_the_pin_cannot_be_written(tmp_path: Path, http_server, monkeypatch) -> None:
    base, files = http_server
    _, sha = _served_checkpoint(tmp_path, files)
    write_registry(tmp_path, {"paprika": {"file": "paprika.pt", "sha256": None, "url": f"{base}/weights/paprika.pt"}})

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(styles, "atomic_write", read_only)
    engine = AnimeGAN(tmp_path, device="cpu", backend="torch")
    assert engine.store.ensure(engine.style("paprika")) == (tmp_path / "paprika.pt", sha)  # used unpinned
    assert not (tmp_path / "paprika.pt.sha256").exists()


def test_atomic_write_syncs_the_file_and_its_directory(tmp_path: Path, monkeypatch) -> None:
    synced: list[tuple[bool, bytes]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        synced.append((is_dir, b"" if is_dir else os.pread(fd, 100, 0)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "x.pt.sha256", b"abc  x.pt\n")
    assert synced == [(False, b"abc  x.pt\n"), (True, b"")], "the data is on disk before the rename, the rename after it"
    assert (tmp_path / "x.pt.sha256").read_bytes() == b"abc  x.pt\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt.sha256"]


def test_downloaded_file_with_wrong_sha256_is_deleted(tmp_path: Path, http_server) -> None:
    base, files = http_server
    _served_checkpoint(tmp_path, files)
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    write_registry(ckpts, {"paprika": {"file": "paprika.pt", "sha256": "1" * 64, "url": f"{base}/weights/paprika.pt"}})
    with pytest.raises(ModelUnavailableError, match="rejected") as info:
        AnimeGAN(ckpts, device="cpu", backend="torch").load("paprika")
    assert "1" * 64 in str(info.value)
    assert sorted(p.name for p in ckpts.iterdir()) == ["styles.json"]


def test_downloaded_non_checkpoint_is_deleted_and_not_pinned(tmp_path: Path, http_server) -> None:
    base, files = http_server
    files["/weights/paprika.pt"] = b"<!doctype html><title>GitHub</title>"
    write_registry(tmp_path, {"paprika": {"file": "paprika.pt", "url": f"{base}/weights/paprika.pt"}})
    with pytest.raises(ModelUnavailableError, match="rejected"):
        AnimeGAN(tmp_path, device="cpu", backend="torch").load("paprika")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles.json"]


def test_http_error_names_file_and_url(tmp_path: Path, http_server) -> None:
    base, _ = http_server
    url = f"{base}/weights/missing.pt"
    write_registry(tmp_path, {"paprika": {"file": "paprika.pt", "url": url}})
    with pytest.raises(ModelUnavailableError) as info:
        AnimeGAN(tmp_path, device="cpu", backend="torch").load("paprika")
    assert str(tmp_path / "paprika.pt") in str(info.value) and url in str(info.value)


def test_unreachable_url_names_file_and_url(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights/paprika.pt"
    write_registry(tmp_path, {"paprika": {"file": "paprika.pt", "url": url}})
    with pytest.raises(ModelUnavailableError) as info:
        AnimeGAN(tmp_path, device="cpu", backend="torch").stylize(noise_image(8, 8), "paprika")
    text = str(info.value)
    assert str(tmp_path / "paprika.pt") in text and url in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles.json"]


def test_download_disabled(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/never"
    write_registry(tmp_path, {"paprika": {"file": "paprika.pt", "url": url}})
    with pytest.raises(ModelUnavailableError, match="downloading is disabled") as info:
        AnimeGAN(tmp_path, device="cpu", backend="torch", download=False).load("paprika")
    assert str(tmp_path / "paprika.pt") in str(info.value) and url in str(info.value)


def test_missing_file_without_url_says_where_to_put_it(tmp_path: Path) -> None:
    write_registry(tmp_path, {"hayao": {"file": "hayao.pt"}})
    with pytest.raises(ModelUnavailableError, match="no download URL") as info:
        AnimeGAN(tmp_path, device="cpu", backend="torch").load("hayao")
    assert str(tmp_path / "hayao.pt") in str(info.value)


# ----- any image in, same-size image out -------------------------------------------------


@pytest.mark.parametrize("size", [(37, 101), (101, 37), (1000, 333), (333, 1000), (1, 1), (5, 3), (8, 8), (256, 256)])
def test_sizes_and_aspect_ratios_are_preserved(torch_engine: AnimeGAN, size: tuple[int, int]) -> None:
    out = torch_engine.stylize(noise_image(*size), "face_paint")
    assert out.size == size and out.mode == "RGB"


def test_large_images_are_bounded_by_max_side(torch_engine: AnimeGAN, monkeypatch) -> None:
    seen: list[tuple[int, ...]] = []
    loaded = torch_engine._get("face_paint")
    runner = loaded.runner
    monkeypatch.setattr(type(runner), "__call__", lambda self, px: (seen.append(px.shape), px)[1])
    out = torch_engine.stylize(noise_image(1000, 333), "face_paint")
    assert out.size == (1000, 333)
    (shape,) = seen
    assert shape[1] <= 256 and shape[0] % 4 == 0 and shape[1] % 4 == 0 and shape[0] >= 85


def test_identity_network_returns_the_image_unchanged(torch_engine: AnimeGAN, monkeypatch) -> None:
    """Padding and cropping put every pixel back where it was (no shift, no resampling)."""
    runner = torch_engine._get("face_paint").runner
    monkeypatch.setattr(type(runner), "__call__", lambda self, px: px)
    image = noise_image(37, 101)
    # No floating point on this path (uint8 in, uint8 out): exact on any machine.
    assert np.array_equal(np.asarray(torch_engine.stylize(image, "face_paint")), np.asarray(image))


def test_rgba_is_composited_on_white() -> None:
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    rgb = open_image(image)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 0, 0) and rgb.getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "P", "LA", "1", "CMYK", "I;16", "PA"])
def test_colour_modes_become_rgb(torch_engine: AnimeGAN, mode: str) -> None:
    image = noise_image(30, 20).convert(mode if mode != "PA" else "RGBA")
    if mode == "PA":
        image = image.convert("P").convert("PA")
    assert open_image(image).mode == "RGB"
    assert torch_engine.stylize(image, "face_paint").size == (30, 20)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    image = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    assert image.mode.startswith("I;16")
    assert open_image(image).getpixel((0, 0)) == (128, 128, 128)


def test_palette_transparency_is_composited(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    assert open_image(buffer.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied(torch_engine: AnimeGAN, tmp_path: Path) -> None:
    stored = noise_image(40, 20)  # landscape pixels ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... shown rotated 90° clockwise: portrait
    path = tmp_path / "photo.jpg"
    stored.save(path, "JPEG", exif=exif.tobytes())
    assert open_image(path).size == (20, 40)
    assert open_image(path.read_bytes()).size == (20, 40)
    assert torch_engine.stylize(path, "face_paint").size == (20, 40)
    assert torch_engine.stylize(path.read_bytes(), "face_paint").size == (20, 40)


@pytest.mark.parametrize(
    "data", [b"", b"definitely not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 20], ids=["empty", "text", "truncated"]
)
def test_non_image_bytes_raise_image_error(torch_engine: AnimeGAN, data: bytes) -> None:
    with pytest.raises(ImageError) as info:
        torch_engine.stylize(data, "face_paint")
    assert info.value.key == "image.unreadable"


def test_truncated_jpeg_raises_image_error() -> None:
    buffer = io.BytesIO()
    noise_image(64, 64).save(buffer, "JPEG")
    with pytest.raises(ImageError):
        open_image(buffer.getvalue()[:200])


def test_missing_path_raises_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        open_image(tmp_path / "nope.png")


# ----- progress, cancellation, caching ---------------------------------------------------


def test_progress_is_reported(torch_engine: AnimeGAN) -> None:
    events: list[tuple[str, float]] = []
    torch_engine.stylize(noise_image(16, 16), "face_paint", progress=lambda stage, f: events.append((stage, f)))
    assert events[0] == ("style", 0.0) and events[-1] == ("style", 1.0)
    assert [f for _, f in events] == sorted(f for _, f in events)


def test_cancel_before_running(torch_engine: AnimeGAN) -> None:
    with pytest.raises(Cancelled):
        torch_engine.stylize(noise_image(16, 16), "face_paint", cancelled=lambda: True)


def test_models_are_loaded_once_per_style(animegan_checkpoints_dir: Path, monkeypatch) -> None:
    reads: list[Path] = []
    original = gen.read_state_dict
    monkeypatch.setattr(gen, "read_state_dict", lambda p: (reads.append(p), original(p))[1])
    engine = AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="torch", download=False)
    for _ in range(3):
        engine.stylize(noise_image(8, 8), "face_paint")
        engine.stylize(noise_image(8, 8), "face_paint_512_v2")
    assert len(reads) == 1
    engine.stylize(noise_image(8, 8), "paprika")
    assert len(reads) == 2


def test_a_new_checkpoint_is_read_once_for_validation_and_onnx_export(tmp_path: Path, monkeypatch) -> None:
    write_checkpoint(tmp_path / "mine.pt", seed=5)
    write_registry(tmp_path, {"mine": {"file": "mine.pt", "sha256": None}})  # unpinned: validated before pinning
    reads: list[Path] = []
    exported: list[gen.Generator] = []
    original_read, original_export = gen.read_state_dict, gen.export_onnx
    monkeypatch.setattr(gen, "read_state_dict", lambda p: (reads.append(p), original_read(p))[1])
    monkeypatch.setattr(gen, "export_onnx", lambda model, meta: (exported.append(model), original_export(model, meta))[1])
    engine = AnimeGAN(tmp_path, device="cpu", backend="onnx", threads=1, download=False)
    assert engine.backend_of("mine") == "onnx"
    assert reads == [tmp_path / "mine.pt"] and len(exported) == 1


def test_styles_give_different_pictures(torch_engine: AnimeGAN) -> None:
    image = noise_image(32, 32)
    assert_images_differ(torch_engine.stylize(image, "face_paint_512_v2"), torch_engine.stylize(image, "paprika"))


# ----- backends ------------------------------------------------------------------------


def test_auto_backend_is_onnx_on_cpu(animegan_checkpoints_dir: Path) -> None:
    assert AnimeGAN(animegan_checkpoints_dir, device="cpu", download=False).backend == "onnx"


def test_unknown_backend_is_refused(animegan_checkpoints_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        AnimeGAN(animegan_checkpoints_dir, backend="tensorrt")


@pytest.mark.parametrize("size", [(64, 64), (37, 101), (200, 120)])
def test_onnx_and_torch_agree(torch_engine: AnimeGAN, onnx_engine: AnimeGAN, size: tuple[int, int]) -> None:
    image = noise_image(*size, seed=7)
    a = torch_engine.stylize(image, "face_paint")
    b = onnx_engine.stylize(image, "face_paint")
    assert onnx_engine.backend_of("face_paint") == "onnx"
    assert_images_close(a, b)  # two backends: the same picture, not the same bits


def test_onnx_with_two_threads_still_matches_torch(torch_engine: AnimeGAN, animegan_checkpoints_dir: Path) -> None:
    # the bench's other thread count: a pool of two (not spinning) splits the work, the picture stays the same
    engine = AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="onnx", max_side=256, download=False, threads=2)
    image = noise_image(96, 60, seed=11)
    assert_images_close(torch_engine.stylize(image, "face_paint"), engine.stylize(image, "face_paint"))
    assert engine._get("face_paint").runner.session.get_session_options().intra_op_num_threads == 2


def test_onnx_sessions_of_both_formats_use_the_tuned_options(onnx_engine: AnimeGAN, nhwc_engine: AnimeGAN) -> None:
    """Both formats share onnx_session_options: thread setting, idle pool threads sleep, no arena (see its docstring)."""
    for engine, style in ((onnx_engine, "face_paint"), (nhwc_engine, "hayao")):
        options = engine._get(style).runner.session.get_session_options()
        assert options.intra_op_num_threads == 1  # TORCH_THREADS
        assert options.get_session_config_entry(ORT_ALLOW_SPINNING) == "0"
        assert not options.enable_cpu_mem_arena


def test_onnx_export_is_cached_and_reused(ckpt_dir: Path, monkeypatch) -> None:
    first = AnimeGAN(ckpt_dir, device="cpu", backend="onnx", threads=1, download=False)
    image = noise_image(24, 40)
    expected = first.stylize(image, "face_paint")
    sha = sha256_file(ckpt_dir / "face_paint_512_v2.pt")
    cached = ckpt_dir / f"face_paint_512_v2.{sha[:12]}.onnx"
    assert cached.is_file()

    def no_export(*args, **kwargs):
        raise AssertionError("re-exported although a cached ONNX file exists")

    monkeypatch.setattr(gen, "export_onnx", no_export)
    second = AnimeGAN(ckpt_dir, device="cpu", backend="onnx", threads=1, download=False)
    assert_images_close(second.stylize(image, "face_paint"), expected)
    assert second.backend_of("face_paint") == "onnx"


def test_changed_checkpoint_is_re_exported(ckpt_dir: Path) -> None:
    AnimeGAN(ckpt_dir, device="cpu", backend="onnx", threads=1, download=False).load("paprika")
    old = list(ckpt_dir.glob("paprika.*.onnx"))
    assert len(old) == 1
    new_sha = write_checkpoint(ckpt_dir / "paprika.pt", seed=9)
    registry = json.loads((ckpt_dir / "styles.json").read_text())
    registry["styles"]["paprika"]["sha256"] = new_sha
    (ckpt_dir / "styles.json").write_text(json.dumps(registry))
    AnimeGAN(ckpt_dir, device="cpu", backend="onnx", threads=1, download=False).load("paprika")
    assert [p.name for p in ckpt_dir.glob("paprika.*.onnx")] == [f"paprika.{new_sha[:12]}.onnx"]


def test_corrupt_onnx_cache_is_rebuilt(ckpt_dir: Path) -> None:
    sha = sha256_file(ckpt_dir / "paprika.pt")
    cached = ckpt_dir / f"paprika.{sha[:12]}.onnx"
    cached.write_bytes(b"garbage")
    engine = AnimeGAN(ckpt_dir, device="cpu", backend="onnx", threads=1, download=False)
    assert engine.backend_of("paprika") == "onnx"
    assert cached.stat().st_size > 1_000_000


# ----- onnx-nhwc styles: the AnimeGANv2 authors' TensorFlow exports -------------------------


@pytest.fixture(scope="module")
def nhwc_engine(animegan_onnx_checkpoints_dir: Path) -> AnimeGAN:
    # backend "torch": onnx-nhwc styles run on ONNX Runtime whatever the setting
    return AnimeGAN(animegan_onnx_checkpoints_dir, device="cpu", backend="torch", max_side=256, download=False, threads=1)


def _nhwc_dir(tmp_path: Path, **entry) -> Path:
    """A checkpoints directory with only the stand-in ``hayao`` (registry entry overridable)."""
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    add_nhwc_style(ckpts, "hayao", **entry)
    return ckpts


def all_levels_image() -> Image.Image:
    """256 x 256: every 8-bit level in every channel (R by column, G by row, B both ways)."""
    cols, rows = np.meshgrid(np.arange(256), np.arange(256))
    return Image.fromarray(np.stack([cols, rows, (cols + rows) % 256], axis=-1).astype(np.uint8), "RGB")


@pytest.mark.parametrize("image", ["levels", "noise", "odd"], ids=str)
def test_nhwc_style_maps_every_pixel_exactly(nhwc_engine: AnimeGAN, image: str) -> None:
    """[0, 255] <-> [-1, 1], RGB order, NHWC layout, padding and cropping: the stand-in's closed form, pixel for pixel."""
    picture = {"levels": all_levels_image(), "noise": noise_image(200, 120, seed=3), "odd": noise_image(37, 101, seed=4)}[image]
    out = nhwc_engine.stylize(picture, "hayao")
    assert out.size == picture.size and out.mode == "RGB"
    # exact: the stand-in has no rounding ties (see tests/support/onnx_style.py)
    assert np.array_equal(np.asarray(out), expected_pixels(np.asarray(picture)))
    assert nhwc_engine.backend_of("hayao") == "onnx"


@pytest.mark.parametrize("size", [(1, 1), (31, 33), (64, 64), (100, 37), (1000, 333)])
def test_nhwc_style_is_fed_multiples_of_32_and_cropped_back(nhwc_engine: AnimeGAN, monkeypatch, size: tuple[int, int]) -> None:
    runner = nhwc_engine._get("hayao").runner
    seen: list[tuple[int, ...]] = []
    real_run = runner.session.run

    class Spy:
        def run(self, names, feeds):
            (x,) = feeds.values()
            seen.append(x.shape)
            assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
            return real_run(names, feeds)

    monkeypatch.setattr(runner, "session", Spy())
    out = nhwc_engine.stylize(noise_image(*size), "hayao")
    assert out.size == size
    ((batch, height, width, channels),) = seen
    assert batch == 1 and channels == 3
    assert height % BLOCK == 0 and width % BLOCK == 0 and min(height, width) >= BLOCK
    assert max(height, width) <= 256  # ANIME_MAX_SIDE still bounds what the network sees
    assert NHWC_SIZE_MULTIPLE == BLOCK


def test_nhwc_style_runs_on_onnx_runtime_whatever_the_backend(animegan_onnx_checkpoints_dir: Path) -> None:
    for backend in ("torch", "onnx", "auto"):
        engine = AnimeGAN(animegan_onnx_checkpoints_dir, device="cpu", backend=backend, threads=1, download=False)
        assert engine.backend_of("hayao") == "onnx"
    assert AnimeGAN(animegan_onnx_checkpoints_dir, device="cpu", backend="torch", download=False).backend_of("paprika") == "torch"


def test_nhwc_session_uses_the_thread_setting_and_the_cpu(nhwc_engine: AnimeGAN) -> None:
    session = nhwc_engine._get("hayao").runner.session
    assert session.get_session_options().intra_op_num_threads == 1  # TORCH_THREADS
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_onnx_providers_prefer_cuda_on_a_cuda_device(monkeypatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers(torch.device("cuda", 0)) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers(torch.device("cpu")) == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnx_providers(torch.device("cuda", 0)) == ["CPUExecutionProvider"]  # onnxruntime without CUDA


def test_nhwc_style_needs_onnxruntime(tmp_path: Path, monkeypatch) -> None:
    from engine.image import animegan

    ckpts = _nhwc_dir(tmp_path)
    monkeypatch.setattr(animegan, "onnxruntime_available", lambda: False)
    engine = AnimeGAN(ckpts, device="cpu", backend="torch", download=False)
    with pytest.raises(ModelUnavailableError, match="onnxruntime"):
        engine.stylize(noise_image(8, 8), "hayao")


def test_nhwc_style_downloads_on_first_use(tmp_path: Path, http_server) -> None:
    base, files = http_server
    files["/AnimeGANv2_Hayao.onnx"] = data = nhwc_style_model()
    ckpts = _nhwc_dir(tmp_path, url=f"{base}/AnimeGANv2_Hayao.onnx")
    (ckpts / "AnimeGANv2_Hayao.onnx").unlink()
    engine = AnimeGAN(ckpts, device="cpu", threads=1)
    assert not engine.is_available("hayao")
    image = noise_image(40, 24)
    assert np.array_equal(np.asarray(engine.stylize(image, "hayao")), expected_pixels(np.asarray(image)))
    assert (ckpts / "AnimeGANv2_Hayao.onnx").read_bytes() == data
    assert sorted(p.name for p in ckpts.iterdir()) == ["AnimeGANv2_Hayao.onnx", "styles.json"]  # no temp files, no export


def test_nhwc_style_without_published_hash_is_pinned_on_first_use_then_enforced(tmp_path: Path, http_server) -> None:
    base, files = http_server
    files["/h.onnx"] = nhwc_style_model()
    ckpts = _nhwc_dir(tmp_path, sha256=None, url=f"{base}/h.onnx")
    (ckpts / "AnimeGANv2_Hayao.onnx").unlink()
    AnimeGAN(ckpts, device="cpu", threads=1).load("hayao")
    pin = (ckpts / "AnimeGANv2_Hayao.onnx.sha256").read_text().split()
    assert pin == [sha256_file(ckpts / "AnimeGANv2_Hayao.onnx"), "AnimeGANv2_Hayao.onnx"]

    (ckpts / "AnimeGANv2_Hayao.onnx").write_bytes(nhwc_style_model(input_name="swapped"))  # replaced behind our back
    files["/h.onnx"] = nhwc_style_model(input_name="also_swapped")  # ... and upstream
    with pytest.raises(ModelUnavailableError, match="rejected") as info:
        AnimeGAN(ckpts, device="cpu", threads=1).load("hayao")
    assert pin[0] in str(info.value)
    assert (ckpts / "AnimeGANv2_Hayao.onnx.rejected").exists()
    assert not (ckpts / "AnimeGANv2_Hayao.onnx").exists()


def test_nhwc_file_with_wrong_registry_hash_is_rejected(tmp_path: Path) -> None:
    ckpts = _nhwc_dir(tmp_path, sha256="2" * 64, url="https://example.invalid/AnimeGANv2_Hayao.onnx")
    with pytest.raises(ModelUnavailableError) as info:
        AnimeGAN(ckpts, device="cpu", download=False).load("hayao")
    text = str(info.value)
    assert "2" * 64 in text and str(ckpts / "AnimeGANv2_Hayao.onnx") in text
    assert "https://example.invalid/AnimeGANv2_Hayao.onnx" in text
    assert (ckpts / "AnimeGANv2_Hayao.onnx.rejected").exists()


def test_downloaded_non_onnx_is_deleted_and_not_pinned(tmp_path: Path, http_server) -> None:
    base, files = http_server
    files["/h.onnx"] = b"<!doctype html><title>Hugging Face</title>"
    ckpts = _nhwc_dir(tmp_path, sha256=None, url=f"{base}/h.onnx")
    (ckpts / "AnimeGANv2_Hayao.onnx").unlink()
    with pytest.raises(ModelUnavailableError, match=r"rejected.*not a loadable ONNX model"):
        AnimeGAN(ckpts, device="cpu").load("hayao")
    assert sorted(p.name for p in ckpts.iterdir()) == ["styles.json"]


@pytest.mark.parametrize("kind", ["nchw", "fixed-size"])
def test_onnx_file_with_another_signature_is_refused_and_not_pinned(tmp_path: Path, kind: str) -> None:
    ckpts = _nhwc_dir(tmp_path, sha256=None)
    path = ckpts / "AnimeGANv2_Hayao.onnx"
    if kind == "nchw":  # an NCHW export (like the engine's own, from a .pt) registered as onnx-nhwc
        path.write_bytes(gen.export_onnx(gen.build_generator(random_state_dict(0))))
        message = "not N x H x W x 3"
    else:
        path.write_bytes(nhwc_style_model(static_size=64))
        message = "fixed size"
    with pytest.raises(ModelUnavailableError, match=message):
        AnimeGAN(ckpts, device="cpu", download=False).load("hayao")
    assert not (ckpts / "AnimeGANv2_Hayao.onnx.sha256").exists()


def test_missing_nhwc_file_says_where_to_put_it(tmp_path: Path) -> None:
    url = "https://huggingface.co/example/AnimeGANv2_Hayao/resolve/0123/AnimeGANv2_Hayao.onnx"
    ckpts = _nhwc_dir(tmp_path, url=url)
    (ckpts / "AnimeGANv2_Hayao.onnx").unlink()
    with pytest.raises(ModelUnavailableError, match="downloading is disabled") as info:
        AnimeGAN(ckpts, device="cpu", download=False).stylize(noise_image(8, 8), "hayao")
    text = str(info.value)
    assert f"Put the file at {ckpts / 'AnimeGANv2_Hayao.onnx'}" in text and url in text


def test_torch_onnx_exports_leave_nhwc_style_files_alone(tmp_path: Path, animegan_onnx_checkpoints_dir: Path) -> None:
    ckpts = tmp_path / "ckpts"
    shutil.copytree(animegan_onnx_checkpoints_dir, ckpts, ignore=shutil.ignore_patterns("*.*.onnx"))
    engine = AnimeGAN(ckpts, device="cpu", backend="onnx", threads=1, download=False)
    engine.load("paprika")
    engine.load("face_paint")
    assert engine.backend_of("paprika") == "onnx" and engine.backend_of("hayao") == "onnx"
    original = animegan_onnx_checkpoints_dir / "AnimeGANv2_Hayao.onnx"
    assert (ckpts / "AnimeGANv2_Hayao.onnx").read_bytes() == original.read_bytes()

