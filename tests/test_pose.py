"""Keeping a photo's pose: DWPose (engine.image.pose) on stand-ins of its real shapes, drawn the OpenPose way."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from engine.errors import ControlModelUnavailableError, NoPoseFoundError, PoseModelUnavailableError
from engine.image.control import ControlConfig, ControlNets, is_skeleton
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pose import COLOURS, PoseDetector
from tests.support.images import assert_images_differ
from tests.support.tiny_pose import CROP_POINTS, PHOTO, photo_point
from tests.test_control_cli import control_env  # noqa: F401  (a fixture)


def photo() -> Image.Image:
    return Image.linear_gradient("L").convert("RGB").resize(PHOTO)


def test_the_skeleton_is_drawn_where_the_models_say(tiny_pose_dir: Path) -> None:
    skeleton = PoseDetector(str(tiny_pose_dir)).skeleton(photo())
    assert skeleton.size == PHOTO and is_skeleton(skeleton)
    nose = photo_point(CROP_POINTS[0])
    right_shoulder = photo_point(CROP_POINTS[6])  # OpenPose's point 2
    assert skeleton.getpixel((round(nose[0]), round(nose[1]))) == COLOURS[0]
    assert skeleton.getpixel((round(right_shoulder[0]), round(right_shoulder[1]))) == COLOURS[2]
    neck = ((photo_point(CROP_POINTS[5])[0] + right_shoulder[0]) / 2, right_shoulder[1])  # the shoulders' middle
    assert skeleton.getpixel((round(neck[0]), round(neck[1]))) == COLOURS[1]
    assert skeleton.getpixel((5, 5)) == (0, 0, 0) and skeleton.getpixel((700, 500)) == (0, 0, 0)


def test_a_large_photo_is_read_with_its_shorter_side_512(tiny_pose_dir: Path) -> None:
    skeleton = PoseDetector(str(tiny_pose_dir)).skeleton(photo().resize((1536, 1024)))
    assert skeleton.size == PHOTO


def test_nobody_in_the_photo_is_said(empty_pose_dir: Path) -> None:
    with pytest.raises(NoPoseFoundError) as raised:
        PoseDetector(str(empty_pose_dir)).skeleton(photo())
    assert raised.value.key == "control.no_pose"


def test_a_missing_detector_says_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(PoseModelUnavailableError) as raised:
        PoseDetector(str(tmp_path / "no-pose")).skeleton(photo())
    assert "CONTROLNET_POSE_DETECTOR" in raised.value.fix and "yolox_l.onnx" in raised.value.fix
    assert isinstance(raised.value, ControlModelUnavailableError) and raised.value.model == "control"
    with pytest.raises(PoseModelUnavailableError) as offline:
        PoseDetector("yzd-v/DWPose", cache_dir=tmp_path).skeleton(photo())
    assert "hf download yzd-v/DWPose yolox_l.onnx dw-ll_ucoco_384.onnx" in offline.value.fix


def test_a_skeleton_picture_is_kept_as_it_is_and_a_photo_is_detected(
    tiny_sd_dir: Path, tiny_controlnet_dir: Path, tiny_pose_dir: Path
) -> None:
    nets = ControlNets(ControlConfig(models={"pose": str(tiny_controlnet_dir)}, pose_detector=str(tiny_pose_dir)))
    skeleton = nets.condition("pose", photo())
    assert skeleton.size == PHOTO and is_skeleton(skeleton)
    assert nets.condition("pose", skeleton) is not None and nets.condition("pose", skeleton).tobytes() == skeleton.tobytes()
    text_to_image = TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2))
    off = nets.draw(text_to_image, "pose", photo(), "a dancer", seed=5, scale=0.0)
    on = nets.draw(text_to_image, "pose", photo(), "a dancer", seed=5, scale=1.0)
    assert_images_differ(off.image, on.image)
    assert not is_skeleton(photo())


@pytest.mark.usefixtures("control_env")
def test_generate_keeps_a_photos_pose_and_says_when_nobody_is_in_it(
    monkeypatch: pytest.MonkeyPatch, tiny_controlnet_dir: Path, tiny_pose_dir: Path, empty_pose_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CONTROLNET_POSE", str(tiny_controlnet_dir))
    monkeypatch.setenv("CONTROLNET_POSE_DETECTOR", str(tiny_pose_dir))
    photo().save(tmp_path / "photo.png")
    argv = ["generate", "--text", "a dancer", "--seed", "4", "--control", "pose", "--control-image", str(tmp_path / "photo.png")]
    assert main([*argv, "-o", str(tmp_path / "kept.png")]) == 0
    assert Image.open(tmp_path / "kept.png").width > Image.open(tmp_path / "kept.png").height
    monkeypatch.setenv("CONTROLNET_POSE_DETECTOR", str(empty_pose_dir))
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "x.png")]) != 0
    err = capsys.readouterr().err
    assert "couldn't find a person in the photo" in err and "Traceback" not in err
