"""metrics.video_io: round trips, frame folders, arrays, find_videos and every input error."""

from __future__ import annotations

import os
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from metrics import video_io
from metrics.errors import VideoInputError
from metrics.video_io import Video, as_video, find_videos, read_video, write_video

T, H, W = 5, 32, 48


def gradient(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """Smooth, slowly changing colours: lossy codecs reproduce them closely."""
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    rgb = np.stack([40 + 3 * xx + 6 * tt, 30 + 5 * yy, 200 - 2 * xx - 2 * yy + 4 * tt], axis=-1)
    assert rgb.min() >= 0 and rgb.max() <= 255
    return rgb.astype(np.uint8)


def check_error(err: VideoInputError, subject, *words: str) -> None:
    """One line, naming the subject, containing every word (case-insensitive)."""
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(f"{subject}: ")
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in {text!r}"


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ----------------------------------------------------------------------------- round trips


def test_mp4_round_trip_is_close(tmp_path):
    frames = gradient()
    path = write_video(tmp_path / "clip.mp4", frames, fps=8)
    assert path == tmp_path / "clip.mp4" and path.is_file()
    video = read_video(path)
    assert isinstance(video, Video)
    assert video.frames.dtype == np.uint8 and video.frames.flags.c_contiguous
    assert (video.num_frames, video.height, video.width) == (T, H, W)
    assert video.frames.shape == (T, H, W, 3)
    assert video.fps == pytest.approx(8.0)
    assert video.source == str(path) and video.notes == ()
    assert mean_abs_error(video.frames, frames) < 6
    # frame order survives: each frame is closer to its own source than to the next one
    for i in range(T - 1):
        assert mean_abs_error(video.frames[i], frames[i]) < mean_abs_error(
            video.frames[i], frames[i + 1]
        )


def test_mp4_lossless_round_trip_is_exact_even_for_odd_sizes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, 31, 47, 3), dtype=np.uint8)
    video = read_video(write_video(tmp_path / "exact.mp4", frames, fps=12.5, lossless=True))
    np.testing.assert_array_equal(video.frames, frames)
    assert video.fps == pytest.approx(12.5)


def test_gif_round_trip_keeps_frames_size_and_repeated_frames(tmp_path):
    frames = gradient(t=6)
    frames[3:] = frames[2]  # repeated frames must stay separate frames
    video = read_video(write_video(tmp_path / "anim.gif", frames, fps=8))
    assert video.frames.shape == (6, H, W, 3)
    assert video.fps == pytest.approx(8.0, abs=0.5)  # GIF delays are whole 1/100 s
    assert mean_abs_error(video.frames, frames) < 8  # palette quantisation is lossy
    np.testing.assert_array_equal(video.frames[3], video.frames[5])


def test_gif_with_few_colours_is_exact(tmp_path):
    frames = np.zeros((3, 16, 20, 3), dtype=np.uint8)
    frames[:, :, :10] = (200, 10, 30)
    frames[1, 4:8] = (7, 7, 7)
    frames[2, :, 15:] = (0, 255, 128)
    video = read_video(write_video(tmp_path / "flat.gif", frames, fps=4))
    np.testing.assert_array_equal(video.frames, frames)


def test_write_creates_parents_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "clip.mp4"
    write_video(target, gradient(), fps=8)
    first = target.read_bytes()
    write_video(str(target), gradient()[:3], fps=8)  # str paths too; replaces the old file
    assert target.read_bytes() != first
    assert read_video(target).num_frames == 3
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip.mp4"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "clip.mp4"
    write_video(target, gradient(), fps=8)
    before = target.read_bytes()
    seen = []

    def broken(path, frames, rate, lossless):
        seen.append(path)
        assert path.parent == target.parent and path.suffix == ".mp4" and path != target
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(video_io, "_write_mp4", broken)
    with pytest.raises(VideoInputError) as info:
        write_video(target, gradient(), fps=8)
    check_error(info.value, target, "disk full")
    assert seen and target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_write_accepts_float_frames(tmp_path):
    frames = gradient()
    video = read_video(write_video(tmp_path / "f.mp4", frames / 255.0, fps=8, lossless=True))
    np.testing.assert_array_equal(video.frames, frames)


@pytest.mark.parametrize(
    ("name", "frames", "kwargs", "words"),
    [
        ("clip.avi", gradient(), {}, ["cannot write", ".avi", ".mp4 or .gif"]),
        ("clip", gradient(), {}, ["cannot write", ".mp4 or .gif"]),
        ("odd.mp4", gradient(h=31), {}, ["even", "48x31", "lossless=True"]),
        ("zero.mp4", gradient(), {"fps": 0}, ["invalid fps"]),
        ("nan.mp4", gradient(), {"fps": float("nan")}, ["invalid fps"]),
        ("bad.mp4", gradient()[..., :2], {}, ["shape", "[T, H, W, 3]"]),
    ],
)
def test_write_errors(tmp_path, name, frames, kwargs, words):
    target = tmp_path / name
    with pytest.raises(VideoInputError) as info:
        write_video(target, frames, **kwargs)
    check_error(info.value, target, *words)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- frame folders


def test_frame_folder_uses_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    numbers = list(range(1, 13))
    random.Random(3).shuffle(numbers)
    for n in numbers:  # written in shuffled order; content encodes the number
        save_png(folder / f"frame_{n}.png", np.full((8, 10, 3), n * 10, dtype=np.uint8))
    (folder / ".frame_99.png").write_bytes(b"hidden junk, e.g. macOS metadata")
    video = read_video(folder)
    assert video.frames.shape == (12, 8, 10, 3)
    assert video.frames[:, 0, 0, 0].tolist() == [n * 10 for n in range(1, 13)]
    assert video.fps is None and video.notes == () and video.source == str(folder)


def test_frame_folder_number_is_the_last_integer_and_jpgs_work(tmp_path):
    for n, value in [(10, 200), (9, 100), (100, 250)]:
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(
            tmp_path / f"take2_{n}.JPG", quality=95
        )
    video = read_video(tmp_path)
    assert np.abs(video.frames[:, 8, 8, 0].astype(int) - [100, 200, 250]).max() <= 3


def test_frame_folder_converts_grey_palette_and_opaque_alpha_with_notes(tmp_path):
    base = gradient(t=1, h=8, w=10)[0]
    grey = base[..., 1]
    save_png(tmp_path / "f1.png", grey)  # mode L
    rgba = np.concatenate([base, np.full((8, 10, 1), 255, np.uint8)], axis=-1)
    save_png(tmp_path / "f2.png", rgba)  # mode RGBA, opaque
    Image.fromarray(base).convert("P").save(tmp_path / "f3.png")  # palette
    Image.fromarray(grey).convert("LA").save(tmp_path / "f4.png")  # grey + opaque alpha
    video = read_video(tmp_path)
    assert video.frames.shape == (4, 8, 10, 3)
    np.testing.assert_array_equal(video.frames[0], np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_array_equal(video.frames[1], base)
    np.testing.assert_array_equal(video.frames[3], video.frames[0])
    assert set(video.notes) == {
        "grey converted to RGB", "opaque alpha dropped", "palette converted to RGB"
    }


def with_display_matrix(path: Path, matrix: tuple[int, ...]) -> Path:
    """``path``'s mp4 with its video track's matrix (tkhd, version 0) set to ``matrix``, as a
    phone writes one for a portrait video (16.16 fixed point, the last entry 2.30)."""
    import struct

    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd")
    assert data[box + 4] == 0  # version 0: the matrix is 44 bytes after the box type
    data[box + 44 : box + 80] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("matrix, quarter_turns, note", [
    ((0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30), -1, "rotated 90 degrees clockwise"),
    ((-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30), 2, "rotated 180 degrees clockwise"),
    ((0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30), 1, "rotated 270 degrees clockwise"),
])
def test_a_video_is_turned_as_its_display_matrix_asks(tmp_path, matrix, quarter_turns, note):
    frames = np.zeros((3, 32, 64, 3), np.uint8)
    frames[:, :16, :32] = 255  # the top-left quarter white: any turn or mirror moves it
    path = write_video(tmp_path / "portrait.mp4", frames, lossless=True)
    video = read_video(with_display_matrix(path, matrix))
    np.testing.assert_array_equal(video.frames, np.rot90(frames, quarter_turns, axes=(1, 2)))
    assert video.notes == (f"{note}, as its display matrix asks",)


def test_a_display_matrix_between_quarter_turns_is_a_one_line_error(tmp_path):
    path = write_video(tmp_path / "tilted.mp4", gradient(), lossless=True)
    with pytest.raises(VideoInputError) as err:
        read_video(with_display_matrix(path, (46341, 46341, 0, -46341, 46341, 0, 0, 0, 1 << 30)))
    check_error(err.value, path, "turns it by -45 degrees", "re-encode it upright")


def test_an_image_is_turned_as_its_exif_orientation_asks(tmp_path):
    image = gradient(t=1)[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90 degrees clockwise
    Image.fromarray(image).save(tmp_path / "photo.png", exif=exif)
    video = read_video(tmp_path / "photo.png")
    np.testing.assert_array_equal(video.frames[0], np.rot90(image, -1))
    assert "turned upright as its EXIF orientation asks" in video.notes


def test_single_image_is_a_one_frame_video(tmp_path):
    image = gradient(t=1)[0]
    save_png(tmp_path / "still.png", image)
    video = read_video(tmp_path / "still.png")
    np.testing.assert_array_equal(video.frames, image[None])
    assert "single image read as one frame" in video.notes


def make_folder(tmp_path, sizes: dict[str, tuple[int, int]]) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, (h, w) in sizes.items():
        save_png(folder / name, np.zeros((h, w, 3), np.uint8))
    return folder


def test_frame_folder_mixed_sizes(tmp_path):
    folder = make_folder(
        tmp_path, {"f_1.png": (8, 10), "f_2.png": (8, 10), "f_3.png": (6, 10), "f_4.png": (5, 5)}
    )
    with pytest.raises(VideoInputError) as info:
        read_video(folder)
    check_error(info.value, folder, "f_3.png", "10x6", "f_1.png", "10x8")
    assert "f_4" not in str(info.value)


def test_frame_folder_file_without_number(tmp_path):
    folder = make_folder(tmp_path, {"f_1.png": (8, 10), "cover.png": (8, 10)})
    with pytest.raises(VideoInputError) as info:
        read_video(folder)
    check_error(info.value, folder, "cover.png", "no number")


def test_frame_folder_duplicate_numbers(tmp_path):
    folder = make_folder(tmp_path, {"f_1.png": (8, 10), "f_01.png": (8, 10)})
    with pytest.raises(VideoInputError) as info:
        read_video(folder)
    check_error(info.value, folder, "f_1.png", "f_01.png", "same frame number")


def test_frame_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("not a frame")
    with pytest.raises(VideoInputError) as info:
        read_video(tmp_path)
    check_error(info.value, tmp_path, "no png/jpg frames")


def test_frame_folder_with_transparency(tmp_path):
    rgba = np.full((8, 10, 4), 255, np.uint8)
    rgba[2, 3, 3] = 254
    save_png(tmp_path / "f_1.png", np.full((8, 10, 3), 9, np.uint8))
    save_png(tmp_path / "f_2.png", rgba)
    with pytest.raises(VideoInputError) as info:
        read_video(tmp_path)
    check_error(info.value, tmp_path, "f_2.png", "has transparency", "1 pixels",
                "flatten onto a background first")


def test_transparent_palette_image(tmp_path):
    image = Image.fromarray(np.zeros((8, 10), np.uint8), mode="L").convert("P")
    image.save(tmp_path / "f_1.png", transparency=0)
    with pytest.raises(VideoInputError) as info:
        read_video(tmp_path)
    check_error(info.value, tmp_path, "has transparency", "80 pixels")


def test_frame_folder_unreadable_image_and_unsupported_mode(tmp_path):
    save_png(tmp_path / "f_1.png", np.zeros((8, 10, 3), np.uint8))
    (tmp_path / "f_2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(VideoInputError) as info:
        read_video(tmp_path)
    check_error(info.value, tmp_path, "cannot read image f_2.png")

    deep = tmp_path / "deep"
    deep.mkdir()
    Image.fromarray(np.full((8, 10), 40000, np.uint16)).save(deep / "f_1.png")  # 16-bit grey
    with pytest.raises(VideoInputError) as info:
        read_video(deep)
    check_error(info.value, deep, "unsupported image mode")


# ----------------------------------------------------------------------------- arrays


def test_npy_uint8_is_exact(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (3, 7, 9, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", frames)
    video = read_video(tmp_path / "v.npy")
    np.testing.assert_array_equal(video.frames, frames)
    assert video.fps is None and video.notes == ()


def test_as_video_keeps_contiguous_uint8_and_validates_fps():
    frames = gradient()
    video = as_video(frames, fps=24)
    assert video.frames is frames and video.fps == 24.0 and video.source == "<array>"
    assert as_video(frames[:, ::2]).frames.flags.c_contiguous
    with pytest.raises(VideoInputError) as info:
        as_video(frames, source="x", fps=-1)
    check_error(info.value, "x", "invalid fps")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_frames_are_rounded_from_0_1(dtype):
    values = [0.0, 0.25, 0.5, 0.2, 1.0, 0.999]
    array = np.array(values, dtype=dtype).reshape(1, 1, 6, 1).repeat(3, axis=-1)
    video = as_video(array, source="f")
    expected = [round(float(np.array(v, dtype=dtype)) * 255) for v in values]
    assert video.frames[0, 0, :, 0].tolist() == expected
    assert expected[:3] == [0, 64, 128]
    assert any("converted to uint8" in n for n in video.notes)


@pytest.mark.parametrize("shape", [(T, H, W), (T, H, W, 1)])
def test_grey_arrays_become_rgb(tmp_path, shape):
    grey = gradient()[..., 0].reshape(shape)
    np.save(tmp_path / "g.npy", grey)
    video = read_video(tmp_path / "g.npy")
    assert video.frames.shape == (T, H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(video.frames[..., c], grey.reshape(T, H, W))
    assert video.notes == ("grey converted to RGB",)


def test_opaque_rgba_arrays_drop_alpha():
    rgb = gradient()
    rgba = np.concatenate([rgb, np.full((T, H, W, 1), 255, np.uint8)], axis=-1)
    video = as_video(rgba)
    np.testing.assert_array_equal(video.frames, rgb)
    assert video.notes == ("opaque alpha dropped",)
    floats = np.concatenate([rgb / 255.0, np.ones((T, H, W, 1))], axis=-1)
    video = as_video(floats)
    np.testing.assert_array_equal(video.frames, rgb)
    assert "opaque alpha dropped" in video.notes


def test_other_integer_dtypes_in_range_are_converted():
    frames = gradient().astype(np.int64)
    video = as_video(frames)
    assert video.frames.dtype == np.uint8
    np.testing.assert_array_equal(video.frames, frames)
    assert video.notes == ("int64 converted to uint8",)


def test_npz_picks_the_frames_array(tmp_path):
    frames = gradient()
    np.savez(tmp_path / "one.npz", anything=frames)
    np.testing.assert_array_equal(read_video(tmp_path / "one.npz").frames, frames)
    np.savez(tmp_path / "video.npz", video=frames, mask=np.zeros(3))
    np.testing.assert_array_equal(read_video(tmp_path / "video.npz").frames, frames)
    np.savez_compressed(tmp_path / "frames.npz", frames=frames, labels=np.arange(3))
    np.testing.assert_array_equal(read_video(tmp_path / "frames.npz").frames, frames)
    np.savez(tmp_path / "fps.npz", video=frames, fps=np.float32(12.5))
    assert read_video(tmp_path / "fps.npz").fps == 12.5


def test_npz_with_ambiguous_keys(tmp_path):
    path = tmp_path / "many.npz"
    np.savez(path, clip_a=gradient(), clip_b=gradient())
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "'clip_a'", "'clip_b'", "'video' or 'frames'")


rgba_clear = np.full((T, H, W, 4), 255, np.uint8)
rgba_clear[1, 2, 3, 3] = 0
rgba_clear[2, 2, 3, 3] = 10
float_nan = np.full((T, H, W, 3), 0.5)
float_nan[0, 0, 0] = [np.nan, np.inf, -np.inf]


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((0, H, W, 3), np.uint8), ["zero frames"]),
        (np.zeros((T, 0, W, 3), np.uint8), ["zero height or width"]),
        (np.zeros((T, H, 0), np.uint8), ["zero height or width"]),
        (np.zeros((T, 3, H, W), np.uint8), ["channel-first", "transpose(0, 2, 3, 1)"]),
        (np.zeros((T, H, W, 2), np.uint8), ["[5, 32, 48, 2]", "[T, H, W, 3]"]),
        (np.zeros((H, W), np.uint8), ["[32, 48]", "[T, H, W, 3]"]),
        (np.zeros((1, T, H, W, 3), np.uint8), ["[1, 5, 32, 48, 3]", "[T, H, W, 3]"]),
        (np.zeros((H, W, 3), np.uint8), ["one [H, W, C] image", "array[None]"]),
        (rgba_clear, ["has transparency", "2 pixels", "flatten onto a background first"]),
        (float_nan, ["3 non-finite"]),
        (np.linspace(0.5, 1.5, T * H * W * 3).reshape(T, H, W, 3),
         ["[0.5, 1.5]", "scale to [0, 1] or pass uint8"]),
        (np.full((T, H, W, 3), -0.25), ["[-0.25, -0.25]", "scale to [0, 1] or pass uint8"]),
        (np.arange(T * H * W * 3, dtype=np.int32).reshape(T, H, W, 3) - 1,
         ["int32", "[-1, 23038]", "[0, 255]"]),
        (np.zeros((T, H, W, 3), bool), ["dtype bool"]),
        (np.zeros((T, H, W, 3), np.complex64), ["dtype complex64"]),
        (np.zeros((T, H, W, 3), object), ["dtype object"]),
    ],
)
def test_array_errors(tmp_path, array, words):
    with pytest.raises(VideoInputError) as info:
        as_video(array, source="clip-x")
    check_error(info.value, "clip-x", *words)
    if array.dtype != object:  # the same rules apply to .npy files
        path = tmp_path / "a.npy"
        np.save(path, array)
        with pytest.raises(VideoInputError) as info:
            read_video(path)
        check_error(info.value, path, *words)


def test_unloadable_array_files(tmp_path):
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    for path in (pickled, junk):
        with pytest.raises(VideoInputError) as info:
            read_video(path)
        check_error(info.value, path, "cannot load")


# ----------------------------------------------------------------------------- video file errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "no such file")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("x")
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "unsupported file type", ".txt", ".mp4", ".npz", ".png")


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi", ".mkv", ".mov", ".gif"])
def test_random_bytes_are_rejected_in_one_line(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path)
    if suffix == ".mp4":
        check_error(info.value, path, "cannot open as video", "invalid data")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "cannot open as video")


def packet_ends(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return sorted(p.pos + p.size for p in container.demux(video=0) if p.size)


def test_truncated_mp4_mid_packet(tmp_path):
    path = write_video(tmp_path / "clip.mp4", gradient(t=8), fps=8)
    ends = packet_ends(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: (ends[3] + ends[4]) // 2])
    with pytest.raises(VideoInputError) as info:
        read_video(cut)
    check_error(info.value, cut)
    assert "decoding failed" in str(info.value) or "truncated" in str(info.value)


def test_truncated_mp4_at_packet_boundary(tmp_path):
    """Cut exactly between packets: FFmpeg decodes the rest silently, the count check catches it."""
    path = write_video(tmp_path / "clip.mp4", gradient(t=8), fps=8)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: packet_ends(path)[2]])
    with pytest.raises(VideoInputError) as info:
        read_video(cut)
    check_error(info.value, cut, "truncated", "lists 8 frames", "only 3")


def test_truncated_mp4_without_index(tmp_path):
    path = write_video(tmp_path / "clip.mp4", gradient(), fps=8)
    data = path.read_bytes()
    # drop the moov index (faststart puts it first): the rest is not a playable mp4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[len(data) // 2 :])
    with pytest.raises(VideoInputError) as info:
        read_video(cut)
    check_error(info.value, cut, "cannot open as video")


def test_an_mp4_cut_anywhere_is_a_one_line_error(tmp_path):
    """Some cuts leave the stream without its codec parameters (an AttributeError once)."""
    data = write_video(tmp_path / "clip.mp4", gradient(t=8), fps=8).read_bytes()
    cut = tmp_path / "cut.mp4"
    for end in range(8, len(data) - 8, 5):
        cut.write_bytes(data[:end])
        with pytest.raises(VideoInputError):
            read_video(cut)


def mjpeg_avi(path: Path, sizes: list[tuple[int, int]]) -> Path:
    """An AVI whose MJPEG frames have the given (H, W) sizes (none: an empty video stream)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=8)
        stream.height, stream.width = sizes[0] if sizes else (16, 16)
        stream.pix_fmt = "yuvj420p"
        container.start_encoding()
        for i, (h, w) in enumerate(sizes):
            ctx = av.CodecContext.create("mjpeg", "w")
            ctx.height, ctx.width, ctx.pix_fmt = h, w, "yuvj420p"
            ctx.time_base = stream.codec_context.time_base
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 99, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuvj420p")
            frame.pts, frame.time_base = i, ctx.time_base
            for packet in [*ctx.encode(frame), *ctx.encode(None)]:
                packet.stream = stream
                container.mux(packet)
    return path


def test_avi_reads_and_frame_size_change_is_an_error(tmp_path):
    ok = read_video(mjpeg_avi(tmp_path / "ok.avi", [(16, 24)] * 3))
    assert ok.frames.shape == (3, 16, 24, 3) and ok.fps == pytest.approx(8)
    path = mjpeg_avi(tmp_path / "mixed.avi", [(16, 24), (16, 24), (8, 24)])
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "frame 2", "24x8", "24x16")


def test_zero_frames_decoded(tmp_path):
    path = mjpeg_avi(tmp_path / "empty.avi", [])
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "zero frames")


def test_container_without_video_stream(tmp_path):
    path = tmp_path / "audio.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "no video stream")


# ----------------------------------------------------------------------------- find_videos


def test_find_videos_file_and_errors(tmp_path):
    clip = tmp_path / "Clip.MP4"
    clip.write_bytes(b"")
    assert find_videos(clip) == [clip]
    assert find_videos(str(clip)) == [clip]
    other = tmp_path / "readme.md"
    other.write_text("x")
    with pytest.raises(VideoInputError) as info:
        find_videos(other)
    check_error(info.value, other, "unsupported file type", ".md", ".mp4", ".npy", ".jpeg")
    missing = tmp_path / "missing"
    with pytest.raises(VideoInputError) as info:
        find_videos(missing)
    check_error(info.value, missing, "no such file")


def test_find_videos_image_folder_is_one_video(tmp_path):
    for n in (1, 2):
        save_png(tmp_path / f"f_{n}.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert find_videos(tmp_path) == [tmp_path]


def test_find_videos_expands_a_folder_of_videos(tmp_path):
    for name in ("clip_10.mp4", "clip_2.webm", "arr.npy", "b.npz", "cover.png", "notes.txt",
                 ".hidden.mp4"):
        (tmp_path / name).write_bytes(b"")
    for sub, has_images in (("frames_b", True), ("frames_a", True), ("empty", False)):
        (tmp_path / sub).mkdir()
        if has_images:
            save_png(tmp_path / sub / "f_1.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "videos_only").mkdir()
    (tmp_path / "videos_only" / "x.mp4").write_bytes(b"")
    found = find_videos(tmp_path)
    assert [p.name for p in found] == [
        "arr.npy", "b.npz", "clip_2.webm", "clip_10.mp4", "frames_a", "frames_b"
    ]
    assert all(p.parent == tmp_path for p in found)


def test_a_pipe_named_like_a_video_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "x.mp4")
    with pytest.raises(VideoInputError) as info:
        find_videos(tmp_path / "x.mp4")
    check_error(info.value, tmp_path / "x.mp4", "not a regular file", "save the video")


def test_find_videos_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    with pytest.raises(VideoInputError) as info:
        find_videos(tmp_path)
    check_error(info.value, tmp_path, "no videos found", ".mp4", "png/jpg")


def test_a_folder_whose_videos_lie_one_level_down_names_those_folders(tmp_path):
    from metrics.video_io import nested_video_folders

    for sub in ("svd", "exsvd", "frames"):
        (tmp_path / sub).mkdir()
    np.save(tmp_path / "svd" / "a.npy", gradient())
    (tmp_path / "exsvd" / "a.mp4").write_bytes(b"")
    save_png(tmp_path / "frames" / "0.png", gradient()[0])
    assert [p.name for p in find_videos(tmp_path)] == ["frames"]  # a folder of frames: a video
    assert [p.name for p in nested_video_folders(tmp_path)] == ["exsvd", "svd"]
    (tmp_path / "frames" / "0.png").unlink()
    with pytest.raises(VideoInputError) as info:
        find_videos(tmp_path)
    check_error(info.value, tmp_path, "no videos found", "sub-folders exsvd, svd hold videos")


def test_found_videos_read_back(tmp_path):
    write_video(tmp_path / "a.mp4", gradient(), fps=8)
    np.save(tmp_path / "b.npy", gradient())
    (tmp_path / "c").mkdir()
    save_png(tmp_path / "c" / "0.png", gradient()[0])
    videos = [read_video(p) for p in find_videos(tmp_path)]
    assert [v.frames.shape for v in videos] == [(T, H, W, 3), (T, H, W, 3), (1, H, W, 3)]
    assert [os.path.basename(v.source) for v in videos] == ["a.mp4", "b.npy", "c"]


# ----------------------------------------------------------------------------- damage, truncation,
# transparency, timing


def texture(t: int = 12, h: int = 64, w: int = 64) -> np.ndarray:
    """A moving, detailed picture: every frame costs the encoder many bytes."""
    base = np.random.default_rng(5).integers(0, 256, (h + t, w + t, 3), dtype=np.uint8)
    base = (base.astype(np.uint16) + np.roll(base, 1, axis=0) + np.roll(base, 1, axis=1)) // 3
    return np.stack([base[i : i + h, i : i + w] for i in range(t)]).astype(np.uint8)


def encode(path: Path, frames: np.ndarray, codec: str, pix_fmt: str = "yuv420p", *, rate: int = 8,
           pts: list[int] | None = None, audio_seconds: float = 0) -> Path:
    """``frames`` (RGB or RGBA) encoded with PyAV at ``rate`` fps, or at ``pts`` in ms; with a
    silent pcm track of ``audio_seconds`` when given."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        audio = container.add_stream("pcm_s16le", rate=8000) if audio_seconds else None
        fmt = "rgba" if frames.shape[-1] == 4 else "rgb24"
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format=fmt)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio:
            for i in range(round(audio_seconds * 10)):
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 8000, i * 800
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
    return path


def zero_middle_of_packet(path: Path, index: int, out: Path) -> Path:
    """``path`` saved as ``out`` with the middle third of its ``index``-th frame's bytes zeroed."""
    with av.open(str(path)) as container:
        pos, size = [(p.pos, p.size) for p in container.demux(video=0) if p.size][index]
    data = bytearray(path.read_bytes())
    data[pos + size // 3 : pos + 2 * size // 3] = bytes(2 * size // 3 - size // 3)
    out.write_bytes(bytes(data))
    return out


def outcome(path: Path) -> str:
    """The error ``read_video`` raises for ``path``, or "read"."""
    try:
        read_video(path)
    except VideoInputError as err:
        return str(err)
    return "read"


def test_a_damaged_mp4_is_an_error_every_time_and_logs_nothing(tmp_path, capfd):
    clean = write_video(tmp_path / "clip.mp4", texture(), fps=8)
    keyframe = zero_middle_of_packet(clean, 0, tmp_path / "damaged.mp4")
    with pytest.raises(VideoInputError) as info:
        read_video(keyframe)
    check_error(info.value, keyframe, "FFmpeg reported damage while decoding (h264: ",
                "re-encode or replace the file")
    # FFmpeg's logger drops a line that repeats the last one, even one logged by an earlier read
    for i in range(12):
        path = zero_middle_of_packet(clean, i, tmp_path / f"damaged_{i}.mp4")
        assert outcome(path) == outcome(path)
    assert av.logging.get_level() is None  # PyAV's default, restored
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), [
    ("h264.mp4", "libx264", "yuv420p"),
    ("mpeg4.avi", "mpeg4", "yuv420p"),
    ("vp9.webm", "libvpx-vp9", "yuv420p"),
    ("h264.mkv", "libx264", "yuv420p"),
    ("ffv1.mkv", "ffv1", "yuv444p"),
    ("png.mov", "png", "rgb24"),
    ("opaque.mov", "png", "rgba"),
])
def test_clean_encodes_read_without_errors_or_log_output(tmp_path, capfd, name, codec, pix_fmt):
    frames = texture()
    video = read_video(encode(tmp_path / name, frames, codec, pix_fmt))
    assert video.frames.shape == frames.shape and video.notes == ()
    assert video.fps == pytest.approx(8)
    assert capfd.readouterr().err == ""


def cut_to(path: Path, fraction: float) -> Path:
    """A copy of ``path`` holding only its first ``fraction`` of bytes."""
    cut = path.with_name(f"cut_{path.name}")
    data = path.read_bytes()
    cut.write_bytes(data[: round(len(data) * fraction)])
    return cut


@pytest.mark.parametrize(("name", "codec", "words"), [
    ("clip.mkv", "libx264", ["s of the 1.5 s its header declares", "truncated"]),
    ("clip.webm", "libvpx-vp9", ["s of the 1.5 s its header declares", "truncated"]),
    ("clip.gif", None, ["lacks the GIF trailer", "truncated"]),
])
def test_files_without_a_frame_count_cut_short_are_errors(tmp_path, name, codec, words):
    frames = texture()
    path = (encode(tmp_path / name, frames, codec) if codec else
            write_video(tmp_path / name, frames, fps=8))
    assert read_video(path).num_frames == len(frames)
    with pytest.raises(VideoInputError) as info:
        read_video(cut_to(path, 0.8))
    check_error(info.value, path.with_name(f"cut_{name}"), *words)


def test_an_mkv_whose_audio_outlasts_its_video_is_complete(tmp_path):
    path = encode(tmp_path / "talk.mkv", texture(), "libx264", audio_seconds=4)
    with av.open(str(path)) as container:
        assert container.duration / av.time_base == pytest.approx(4, abs=0.1)  # the audio's
    assert read_video(path).num_frames == 12


def sprite_frames(clear: bool) -> list[Image.Image]:
    """RGBA frames: a moving square on a transparent (or opaque black) background."""
    frames = []
    for i in range(4):
        rgba = np.zeros((32, 32, 4), np.uint8)
        rgba[..., 3] = 0 if clear else 255
        rgba[8 : 16, 4 * i : 4 * i + 8] = (250, 40, 40, 255)
        frames.append(Image.fromarray(rgba))
    return frames


@pytest.mark.parametrize("clear", [True, False])
def test_a_gif_must_be_opaque(tmp_path, clear):
    path = tmp_path / "sprite.gif"
    first, *rest = sprite_frames(clear)
    first.save(path, save_all=True, append_images=rest, duration=100, loop=0, disposal=2)
    if not clear:
        video = read_video(path)
        assert video.frames.shape == (4, 32, 32, 3) and video.frames[0, 0, 0].tolist() == [0, 0, 0]
        return
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, "frame 0 has transparency", "flatten onto a background first")


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "words"), [
    ("sprite.mov", "png", "rgba", ["frame 0 has transparency", "960 pixels"]),
    ("sprite.webm", "libvpx-vp9", "yuva420p", ["has transparency", "alpha_mode 1"]),
])
def test_a_video_with_transparency_is_refused(tmp_path, name, codec, pix_fmt, words):
    frames = np.stack([np.asarray(f) for f in sprite_frames(clear=True)])
    path = encode(tmp_path / name, frames, codec, pix_fmt)
    with pytest.raises(VideoInputError) as info:
        read_video(path)
    check_error(info.value, path, *words, "flatten onto a background first")


@pytest.mark.parametrize(("name", "codec", "rate"), [
    ("clip.mpg", "mpeg1video", 25),
    ("clip.mpeg", "mpeg2video", 25),
    ("clip.ts", "libx264", 8),
    ("clip.wmv", "wmv2", 8),
    ("clip.flv", "flv", 8),
])
def test_more_video_suffixes_read(tmp_path, name, codec, rate):
    video = read_video(encode(tmp_path / name, texture(), codec, rate=rate))
    assert video.frames.shape == (12, 64, 64, 3) and video.fps == pytest.approx(rate)
    assert find_videos(tmp_path / name) == [tmp_path / name]


def test_an_m4v_is_read_as_the_mp4_it_is(tmp_path):
    path = write_video(tmp_path / "clip.mp4", gradient(), fps=8).rename(tmp_path / "clip.m4v")
    assert read_video(path).frames.shape == (T, H, W, 3)
    assert find_videos(tmp_path) == [path]


def test_skipped_files_are_named(tmp_path):
    from metrics.video_io import skipped_files, skipped_note

    for name in ("a.mp4", "b.webp", "c.xyz", "cover.png", "notes.txt", "meta.json", ".DS_Store",
                 "d.bin", "make_them.py"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "frames").mkdir()
    save_png(tmp_path / "frames" / "0.png", gradient()[0])
    (tmp_path / "frames" / "1.webp").write_bytes(b"")
    assert [p.name for p in find_videos(tmp_path)] == ["a.mp4", "frames"]  # unchanged
    assert [p.name for p in skipped_files(tmp_path)] == ["b.webp", "c.xyz", "cover.png", "d.bin"]
    assert skipped_note(tmp_path) == ("skipped 4 files that are not videos or frame folders: "
                                      "b.webp, c.xyz, cover.png and 1 more")
    assert skipped_note(tmp_path / "frames") == (
        "skipped 1 file that is not a video or frame folder: 1.webp")
    assert skipped_files(tmp_path / "a.mp4") == [] and skipped_note(tmp_path / "a.mp4") == ""


def test_variable_frame_timing_is_noted(tmp_path):
    pts = [0, 10, 40, 1200, 1240, 1280, 1300, 1400, 2000, 2040, 2080, 2120]
    video = read_video(encode(tmp_path / "vfr.mp4", texture(), "libx264", pts=pts))
    assert video.notes == (
        "frame durations vary from 10 to 1160 ms; scored per frame as if evenly spaced",)
    gif = tmp_path / "vfr.gif"
    first, *rest = sprite_frames(clear=False)
    first.save(gif, save_all=True, append_images=rest, duration=[40, 1000, 40, 200], loop=0)
    assert read_video(gif).notes == (
        "frame durations vary from 40 to 1000 ms; scored per frame as if evenly spaced",)


def test_rounding_to_a_millisecond_time_base_is_not_variable_timing(tmp_path):
    video = read_video(encode(tmp_path / "fast.mkv", texture(), "libx264", rate=120))
    assert video.notes == () and video.fps == pytest.approx(120)  # frames 8 or 9 ms apart


@pytest.mark.parametrize("numbers, said", [
    ((0, 1, 2, 5, 6), "(2 is followed by 5)"),
    ((0, 1, 9, 10, 30), "(1 is followed by 9, and more)"),
    ((0, 2, 4, 6), None),  # every other frame exported: an even step, no gap
    ((3, 4, 5), None),
])
def test_unevenly_numbered_frames_are_noted(tmp_path, numbers, said):
    for number in numbers:
        Image.fromarray(np.full((16, 16, 3), number, np.uint8)).save(tmp_path / f"f_{number}.png")
    notes = [n for n in read_video(tmp_path).notes if "unevenly spaced" in n]
    assert notes == ([] if said is None else [
        f"frame numbers are unevenly spaced {said}: frames missing? scored as consecutive"])
