"""wsolevaluation metadata: the reference's file formats, written and read back."""

import numpy as np
import pytest

from simpool.data.wsol import WSOLMetadata, read_wsol_metadata, write_wsol_metadata


def test_reads_the_reference_format(tmp_path):
    # lines as in wsolevaluation's metadata/CUB/test; several localization lines are several instances
    image_id = "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
    (tmp_path / "image_ids.txt").write_text(f"{image_id}\n")
    (tmp_path / "class_labels.txt").write_text(f"{image_id},0\n")
    (tmp_path / "image_sizes.txt").write_text(f"{image_id},500,347\n")
    (tmp_path / "localization.txt").write_text(f"{image_id},60,27,385,331\n{image_id},1,2,3,4\n")
    metadata = read_wsol_metadata(tmp_path)
    assert metadata.image_ids == [image_id]
    assert metadata.class_labels == {image_id: 0} and metadata.image_sizes == {image_id: (500, 347)}
    assert metadata.boxes[image_id].tolist() == [[60, 27, 385, 331], [1, 2, 3, 4]]  # x0, y0, x1, y1


def test_round_trip(tmp_path):
    metadata = WSOLMetadata(
        ["a.jpg", "b.jpg"],
        {"a.jpg": 3, "b.jpg": 1},
        {"a.jpg": (10, 20), "b.jpg": (30, 40)},
        {"a.jpg": np.array([[1, 2, 3, 4]]), "b.jpg": np.array([[0, 0, 5, 5], [6, 6, 9, 9]])},
    )
    back = read_wsol_metadata(write_wsol_metadata(tmp_path, metadata))
    assert back.image_ids == metadata.image_ids and back.class_labels == metadata.class_labels
    assert back.image_sizes == metadata.image_sizes
    assert {k: v.tolist() for k, v in back.boxes.items()} == {k: v.tolist() for k, v in metadata.boxes.items()}


def test_missing_files(tmp_path):
    with pytest.raises(ValueError, match="image_ids.txt"):
        read_wsol_metadata(tmp_path)


def _write_split(folder, box, size=(500, 347)):
    image_id = "a/b.jpg"
    (folder / "image_ids.txt").write_text(f"{image_id}\n")
    (folder / "class_labels.txt").write_text(f"{image_id},0\n")
    (folder / "image_sizes.txt").write_text(f"{image_id},{size[0]},{size[1]}\n")
    (folder / "localization.txt").write_text(f"{image_id},{','.join(map(str, box))}\n")


@pytest.mark.parametrize(
    "box",
    [
        (100, 27, 60, 331),  # inverted: x1 < x0
        (60, 331, 385, 27),  # inverted: y1 < y0
        (60, 27, 501, 331),  # x1 beyond the width 500
        (-1, 27, 385, 331),  # left of the image
        (60, 27, 385, 348),  # below the height 347
    ],
)
def test_a_box_outside_its_image_or_inverted_names_the_image_box_and_size(tmp_path, box):
    # the metric would score such a box as a miss without a word; reading the metadata refuses it
    _write_split(tmp_path, box)
    expected = rf"\({box[0]}, {box[1]}, {box[2]}, {box[3]}\) of image 'a/b.jpg' is not inside its 500x347 image"
    with pytest.raises(ValueError, match=expected):
        read_wsol_metadata(tmp_path)


def test_boxes_touching_the_image_border_are_valid(tmp_path):
    _write_split(tmp_path, (0, 0, 500, 347))  # x1, y1 exclusive ends: the whole image
    assert read_wsol_metadata(tmp_path).boxes["a/b.jpg"].tolist() == [[0, 0, 500, 347]]


def test_boxes_without_an_image_size_are_an_error(tmp_path):
    _write_split(tmp_path, (0, 0, 5, 5))
    (tmp_path / "image_sizes.txt").write_text("other.jpg,10,10\n")
    with pytest.raises(ValueError, match="'a/b.jpg' has boxes but no size"):
        read_wsol_metadata(tmp_path)
