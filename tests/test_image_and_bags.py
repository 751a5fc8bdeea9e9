import numpy as np
import pytest
from key2mesh_ros.bag_transport import write_bag
from key2mesh_ros.image_encoding import rgb_to_image
from sensor_msgs.msg import CompressedImage, Image

from key2mesh.bags import BagError, bag_topics, read_bag
from key2mesh.image_decoding import ImageError, compressed_to_rgb, image_to_rgb


def _image(encoding, pixels: np.ndarray, step=None, bigendian=False):
    msg = Image()
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding, msg.is_bigendian = encoding, int(bigendian)
    row = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    step = step or row.shape[1]
    padded = np.zeros((pixels.shape[0], step), np.uint8)
    padded[:, : row.shape[1]] = row
    msg.step = step
    msg.data = padded.tobytes()
    return msg


RGB = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding,pixels", [
    ("rgb8", RGB), ("bgr8", RGB[..., ::-1].copy()), ("rgba8", np.dstack([RGB, np.full((5, 7), 9, np.uint8)])),
    ("bgra8", np.dstack([RGB[..., ::-1], np.zeros((5, 7), np.uint8)])),
])
def test_colour_encodings_and_row_padding(encoding, pixels):
    for step in (None, pixels.shape[1] * pixels.shape[2] + 13):  # with and without padding
        np.testing.assert_array_equal(image_to_rgb(_image(encoding, pixels, step)), RGB)


def test_mono_and_big_endian_16_bit():
    grey = RGB[..., 0]
    out = image_to_rgb(_image("mono8", grey[..., None]))
    assert out.shape == (5, 7, 3) and np.array_equal(out[..., 1], grey)
    deep = (grey.astype(np.uint16) * 200)
    little = image_to_rgb(_image("mono16", deep.astype("<u2")[..., None]))
    big = image_to_rgb(_image("mono16", deep.astype(">u2")[..., None], bigendian=True))
    np.testing.assert_array_equal(little, big)
    assert little.max() == 255


def test_bad_images_raise_clear_errors():
    with pytest.raises(ImageError, match="unsupported encoding 'yuv422'"):
        image_to_rgb(_image("yuv422", RGB))
    short = _image("rgb8", RGB)
    short.data = short.data[:-10]
    with pytest.raises(ImageError, match="needs"):
        image_to_rgb(short)
    empty = Image(encoding="rgb8")
    with pytest.raises(ImageError, match="empty image"):
        image_to_rgb(empty)
    lying = _image("rgb8", RGB)
    lying.step = 3
    with pytest.raises(ImageError, match="step"):
        image_to_rgb(lying)
    corrupt = CompressedImage(format="jpeg")
    corrupt.data = b"\xff\xd8 definitely not a jpeg"
    with pytest.raises(ImageError, match="corrupt"):
        compressed_to_rgb(corrupt)


def test_compressed_roundtrip():
    import cv2

    ok, jpeg = cv2.imencode(".png", RGB[..., ::-1])
    msg = CompressedImage(format="png")
    msg.data = jpeg.tobytes()
    np.testing.assert_array_equal(compressed_to_rgb(msg), RGB)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_roundtrip_and_errors(tmp_path, storage):
    from key2mesh_msgs.msg import HumanMesh, HumanMeshArray

    out = HumanMeshArray(humans=[HumanMesh(track_id=3)])
    msgs = [("/camera/image_raw", rgb_to_image(RGB), 10), ("/human_mesh", out, 20), ("/camera/image_raw", rgb_to_image(RGB), 30)]
    path = write_bag(tmp_path / "bag", msgs, storage=storage)
    assert bag_topics(path) == {"/camera/image_raw": "sensor_msgs/msg/Image", "/human_mesh": "key2mesh_msgs/msg/HumanMeshArray"}
    back = list(read_bag(path))
    assert [t for t, _, _, _ in back] == ["/camera/image_raw", "/human_mesh", "/camera/image_raw"]
    np.testing.assert_array_equal(image_to_rgb(back[0][3]), RGB)
    assert back[1][3].humans[0].track_id == 3
    with pytest.raises(BagError, match="topics in the bag"):
        list(read_bag(path, ["/front/image"]))
    with pytest.raises(BagError, match="not found"):
        bag_topics(tmp_path / "nope")
    empty = write_bag(tmp_path / "empty", [], storage=storage)
    with pytest.raises(BagError, match="no topic|empty"):
        list(read_bag(empty, ["/camera/image_raw"]))


def test_decompression_bomb_is_refused_before_decoding():
    import time

    import cv2

    ok, png = cv2.imencode(".png", np.zeros((10000, 10000, 3), np.uint8))
    msg = CompressedImage(format="png", data=png.tobytes())
    assert len(msg.data) < 1_000_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="10000x10000.*refused without decoding"):
        compressed_to_rgb(msg)
    assert time.perf_counter() - start < 0.1
    small = cv2.imencode(".jpg", np.full((48, 64, 3), 200, np.uint8))[1]
    assert compressed_to_rgb(CompressedImage(format="jpeg", data=small.tobytes())).shape == (48, 64, 3)
