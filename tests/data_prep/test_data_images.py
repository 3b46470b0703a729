"""data_prep.images: every pixel format ends as the same square uint8 array; bad files name themselves."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from data_prep.images import ImageFileError, decode_files, decode_image, encode_pixels
from data_files import random_images


def _png16_rgb(path, array):
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_png_at_its_own_size_is_returned_unchanged(tmp_path):
    image = random_images(1, 32)[0]
    Image.fromarray(image).save(tmp_path / "a.png")
    array, notes = decode_image(str(tmp_path / "a.png"), 32)
    np.testing.assert_array_equal(array, image)
    assert array.dtype == np.uint8 and notes == []


def test_centre_square_crop_of_a_wide_image(tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 200  # the centre square is exactly this band
    Image.fromarray(wide).save(tmp_path / "wide.png")
    array, _ = decode_image(str(tmp_path / "wide.png"), 20)
    np.testing.assert_array_equal(array, wide[:, 20:40])


@pytest.mark.parametrize("resample", ["lanczos", "area"])
def test_downscale_of_a_constant_image_keeps_its_value_and_area_filter_averages(tmp_path, resample):
    image = np.full((64, 64, 3), 77, np.uint8)
    image[:32] = 177  # top half bright: the area filter gives exact 2x2 means at 32 px
    Image.fromarray(image).save(tmp_path / "a.png")
    array, _ = decode_image(str(tmp_path / "a.png"), 32, resample=resample)
    assert array.shape == (32, 32, 3)
    assert array[0, 0, 0] == 177 and array[-1, -1, 0] == 77
    if resample == "area":
        np.testing.assert_array_equal(array, image.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).astype(np.uint8))


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    array, notes = decode_image(str(tmp_path / "g16.png"), 32, channels=1)
    np.testing.assert_array_equal(array[..., 0], np.round(values / 257.0).astype(np.uint8))
    assert "16-bit" in notes


def test_16bit_rgb_keeps_the_high_byte(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, (16, 16, 3)).astype(np.uint16)
    _png16_rgb(tmp_path / "rgb16.png", values)
    array, notes = decode_image(str(tmp_path / "rgb16.png"), 16)
    assert np.abs(array.astype(int) - np.round(values / 257.0)).max() <= 1
    assert "16-bit" in notes


def test_rgba_opaque_alpha_is_dropped_and_transparency_goes_over_white(tmp_path):
    rgb = random_images(1, 16)[0]
    opaque = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    array, notes = decode_image(str(tmp_path / "opaque.png"), 16)
    np.testing.assert_array_equal(array, rgb)
    assert notes == ["opaque alpha dropped"]
    clear = opaque.copy()
    clear[..., 3] = 0
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    array, notes = decode_image(str(tmp_path / "clear.png"), 16)
    assert (array == 255).all() and notes == ["transparency composited over white"]


def test_grayscale_palette_and_bilevel_become_rgb(tmp_path):
    gray = random_images(1, 16, channels=1)[0][..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    array, _ = decode_image(str(tmp_path / "gray.png"), 16)
    np.testing.assert_array_equal(array, np.repeat(gray[..., None], 3, axis=-1))
    rgb = random_images(1, 16)[0]
    palette = Image.fromarray(rgb).quantize(colors=16)
    palette.save(tmp_path / "palette.png")
    array, _ = decode_image(str(tmp_path / "palette.png"), 16)
    np.testing.assert_array_equal(array, np.asarray(palette.convert("RGB")))
    Image.fromarray(gray > 128).save(tmp_path / "bits.png")
    array, _ = decode_image(str(tmp_path / "bits.png"), 16)
    assert set(np.unique(array)) <= {0, 255}


def test_cmyk_jpeg_is_converted_to_rgb_with_a_note(tmp_path):
    Image.new("CMYK", (24, 24), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    array, notes = decode_image(str(tmp_path / "cmyk.jpg"), 24)
    assert notes == ["CMYK"]
    red, green, blue = array.reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:8, :8] = 255  # white top-left quadrant
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180 degrees
    Image.fromarray(image).save(tmp_path / "rotated.png", exif=exif)
    array, _ = decode_image(str(tmp_path / "rotated.png"), 16)
    np.testing.assert_array_equal(array, image[::-1, ::-1])


def test_webp_and_jpeg_decode_as_pillow_does(tmp_path):
    image = random_images(1, 32)[0]
    Image.fromarray(image).save(tmp_path / "a.webp", lossless=True)
    np.testing.assert_array_equal(decode_image(str(tmp_path / "a.webp"), 32)[0], image)
    Image.fromarray(image).save(tmp_path / "a.jpg", quality=95)
    np.testing.assert_array_equal(decode_image(str(tmp_path / "a.jpg"), 32)[0], np.asarray(Image.open(tmp_path / "a.jpg")))


def test_large_jpeg_uses_reduced_decoding_but_still_covers_the_size(tmp_path):
    image = np.repeat(np.repeat(random_images(1, 32)[0], 16, axis=0), 16, axis=1)  # 512 px, smooth blocks
    Image.fromarray(image).save(tmp_path / "big.jpg", quality=95)
    array, _ = decode_image(str(tmp_path / "big.jpg"), 64)
    reference = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))
    assert array.shape == (64, 64, 3) and np.abs(array.astype(int) - reference).mean() < 4


def _bad_files(tmp_path):
    good = io.BytesIO()
    Image.fromarray(random_images(1, 64)[0]).save(good, "PNG")
    (tmp_path / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not an image\n")
    return {"truncated.png": "truncated", "empty.png": "empty file", "text.png": "not an image"}


def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path):
    for name, words in _bad_files(tmp_path).items():
        with pytest.raises(ImageFileError) as caught:
            decode_image(str(tmp_path / name), 32)
        message = str(caught.value)
        assert message.startswith(str(tmp_path / name)) and words in message and "\n" not in message


def test_worker_chunk_reports_errors_instead_of_raising(tmp_path):
    _bad_files(tmp_path)
    Image.fromarray(random_images(1, 8)[0]).save(tmp_path / "good.png")
    items = [(i, str(tmp_path / name)) for i, name in enumerate(["good.png", "text.png", "empty.png"])]
    results = decode_files((items, 8, 3, "lanczos", "raw"))
    assert [r[0] for r in results] == [0, 1, 2]
    assert results[0][1] is not None and results[0][2] is None
    for (_, payload, error, _), name in zip(results[1:], ["text.png", "empty.png"]):
        assert payload is None and str(tmp_path / name) in error


def test_png_encoding_round_trips(tmp_path):
    image = random_images(1, 16)[0]
    decoded = np.asarray(Image.open(io.BytesIO(encode_pixels(image, "png"))))
    np.testing.assert_array_equal(decoded, image)
    assert encode_pixels(image, "raw") == image.tobytes()
