"""wsolevaluation metadata: the reference's file formats (boxes, OpenImages masks), written and read back."""

import cv2
import numpy as np
import pytest

from simpool.data.wsol import (
    IGNORED,
    WSOLMetadata,
    default_mask_root,
    load_masks,
    read_mask,
    read_wsol_metadata,
    write_wsol_metadata,
)


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


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array.astype(np.uint8))


def test_reads_openimages_masks_with_their_ignore_region(tmp_path):
    # wsolevaluation's metadata/OpenImages: localization.txt lists masks, the ignore path on an image's first line
    ids = ["test/c/a.jpg", "test/c/b.jpg"]
    (tmp_path / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (tmp_path / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (tmp_path / "image_sizes.txt").write_text("".join(f"{i},8,4\n" for i in ids))
    (tmp_path / "localization.txt").write_text(
        "test/c/a.jpg,test/c/a_m1.png,test/c/a_ignore.png\ntest/c/a.jpg,test/c/a_m2.png,\ntest/c/b.jpg,test/c/b_m1.png,\n"
    )
    metadata = read_wsol_metadata(tmp_path)
    assert metadata.boxes == {} and metadata.ignore == {ids[0]: "test/c/a_ignore.png", ids[1]: ""}
    assert metadata.masks == {ids[0]: ["test/c/a_m1.png", "test/c/a_m2.png"], ids[1]: ["test/c/b_m1.png"]}
    root = tmp_path / "masks"
    one, two, ignore = np.zeros((4, 8)), np.zeros((4, 8)), np.zeros((4, 8))
    one[0, :2], two[1, :2], ignore[:2, :4] = 255, 255, 255  # two instances; an ignore box over both and more
    for name, array in [("a_m1", one), ("a_m2", two), ("a_ignore", ignore), ("b_m1", two)]:
        _png(root / "test" / "c" / f"{name}.png", array)
    # 1 on the union of the instances, 255 on the ignore box outside them, 0 elsewhere (wsolevaluation's get_mask)
    expected = np.zeros((4, 8), np.uint8)
    expected[:2, :4] = IGNORED
    expected[:2, :2] = 1
    np.testing.assert_array_equal(read_mask(root, metadata.masks[ids[0]], metadata.ignore[ids[0]]), expected)
    masks = load_masks(metadata, root, ids)
    np.testing.assert_array_equal(masks, [expected, (two > 0).astype(np.uint8)])
    np.testing.assert_array_equal(load_masks(metadata, root, ids, ignore=False)[0], expected == 1)
    # resized (nearest) to 224x224 as the reference reads them: each pixel a 56x28 block
    np.testing.assert_array_equal(
        load_masks(metadata, root, ids[:1], size=(224, 224))[0], expected.repeat(56, 0).repeat(28, 1)
    )


def test_an_ignore_mask_after_an_images_first_line_is_refused(tmp_path):
    _write_split(tmp_path, (0, 0, 5, 5))
    (tmp_path / "masks.txt").write_text("a/b.jpg,m1.png,\na/b.jpg,m2.png,ignore.png\n")
    with pytest.raises(ValueError, match="gives an ignore mask on a line other than its first"):
        read_wsol_metadata(tmp_path)


def test_boxes_and_masks_round_trip(tmp_path):
    metadata = WSOLMetadata(
        ["a.jpg", "b.jpg"],
        {"a.jpg": 3, "b.jpg": 1},
        {"a.jpg": (10, 20), "b.jpg": (30, 40)},
        {"a.jpg": np.array([[1, 2, 3, 4]]), "b.jpg": np.array([[0, 0, 5, 5]])},
        {"a.jpg": ["a1.png", "a2.png"], "b.jpg": ["b.png"]},
        {"a.jpg": "a_ignore.png", "b.jpg": ""},
    )
    write_wsol_metadata(tmp_path, metadata)
    assert (tmp_path / "masks.txt").read_text() == "a.jpg,a1.png,a_ignore.png\na.jpg,a2.png,\nb.jpg,b.png,\n"
    back = read_wsol_metadata(tmp_path)
    assert back.masks == metadata.masks and back.ignore == metadata.ignore
    assert {k: v.tolist() for k, v in back.boxes.items()} == {k: v.tolist() for k, v in metadata.boxes.items()}


def test_a_bench_export_has_its_exact_masks(tmp_path):
    from simpool.data.bench import SimPoolBench
    from simpool.data.bench_export import export

    export(tmp_path, "wsol", "original", split="test", num_images=6, progress=False)
    folder = tmp_path / "metadata" / "test"
    metadata = read_wsol_metadata(folder)
    assert default_mask_root(folder) == tmp_path / "masks"
    masks = load_masks(metadata, default_mask_root(folder), metadata.image_ids)  # (6, 64, 64) at their own size
    bench = SimPoolBench("test", "original", num_images=6)
    rendered = [bench.render(int(image_id[-10:-4]))[1] for image_id in metadata.image_ids]
    np.testing.assert_array_equal(masks, np.stack(rendered))
    assert metadata.masks == {i: [i] for i in metadata.image_ids} and set(metadata.ignore.values()) == {""}
