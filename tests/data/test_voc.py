"""VOC XML and COCO20k readers: LOST's box conventions."""

import json
import re

import numpy as np
import pytest

from simpool.data.coco import read_coco20k
from simpool.data.voc import read_voc_annotation, voc_image_ids, write_voc_annotation

XML = """<annotation><filename>000005.jpg</filename><size><width>500</width><height>375</height><depth>3</depth></size>
<object><name>chair</name><truncated>0</truncated><difficult>0</difficult>
<bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
<object><name>chair</name><truncated>1</truncated><difficult>0</difficult>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>500</xmax><ymax>375</ymax></bndbox></object>
<object><name>dog</name><truncated>0</truncated><difficult>1</difficult>
<bndbox><xmin>5</xmin><ymin>6</ymin><xmax>7</xmax><ymax>8</ymax></bndbox></object></annotation>"""


def test_voc_boxes_shift_only_the_minimums(tmp_path):
    (tmp_path / "a.xml").write_text(XML)
    annotation = read_voc_annotation(tmp_path / "a.xml")
    # 1-based inclusive -> 0-based, end exclusive: (xmin - 1, ymin - 1, xmax, ymax); (1, 1, 500, 375) is the image
    assert annotation.boxes.tolist() == [[262, 210, 324, 339], [0, 0, 500, 375], [4, 5, 7, 8]]
    assert annotation.name == "000005.jpg" and annotation.size == (500, 375)
    assert annotation.classes == ["chair", "chair", "dog"]
    # --no_hard drops the truncated and the difficult object
    assert read_voc_annotation(tmp_path / "a.xml", remove_hards=True).boxes.tolist() == [[262, 210, 324, 339]]


def test_voc_write_read_and_image_set(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    write_voc_annotation(root / "Annotations" / "x.xml", "x.jpg", (64, 48), np.array([[0, 4, 30, 40]]), ["cat"])
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("x\n")
    assert voc_image_ids(tmp_path, "2007") == ["x"]
    assert read_voc_annotation(root / "Annotations" / "x.xml").boxes.tolist() == [[0, 4, 30, 40]]


def test_coco20k_drops_crowd_and_rounds(tmp_path):
    (tmp_path / "list.txt").write_text(
        "train2014/COCO_train2014_000000000042.jpg\ntrain2014/COCO_train2014_000000000007.jpg\n"
    )
    annotations = [
        {"image_id": 42, "bbox": [10.4, 20.5, 30.2, 40.6], "iscrowd": 0},  # round(20.5) = 20, round(61.1) = 61
        {"image_id": 42, "bbox": [0, 0, 5, 5], "iscrowd": 1},
        {"image_id": 7, "bbox": [1, 1, 2, 2], "iscrowd": 1},  # only crowd: no boxes, still listed
    ]
    (tmp_path / "inst.json").write_text(json.dumps({"annotations": annotations}))
    images = read_coco20k(tmp_path / "list.txt", tmp_path / "inst.json")
    assert [i.name for i in images] == ["42", "7"]
    assert images[0].boxes.tolist() == [[10, 20, 41, 61]] and images[1].boxes.shape == (0, 4)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda xml: xml.replace("<xmin>263</xmin>", ""), r"object 0 \(<chair>\) has no <bndbox><xmin>"),
        (lambda xml: xml.replace("<ymax>8</ymax>", ""), r"object 2 \(<dog>\) has no <bndbox><ymax>"),
        (lambda xml: xml.replace("<xmax>324</xmax>", "<xmax>abc</xmax>"), r"<bndbox><xmax>.*'abc', not a number"),
        (lambda xml: re.sub("<size>.*</size>", "", xml), "the annotation has no <size><width>"),
        (lambda xml: xml.replace("<height>375</height>", ""), "the annotation has no <size><height>"),
        (lambda xml: xml.replace("<filename>000005.jpg</filename>", ""), "has no <filename>"),
        (lambda xml: xml.replace("</annotation>", ""), "is not a well-formed VOC XML file"),
    ],
)
def test_a_broken_annotation_names_the_file_and_what_is_missing(tmp_path, edit, message):
    # before: TypeError (int(None)), AttributeError (None.findtext / None.strip) or ParseError, none naming the file
    (tmp_path / "a.xml").write_text(edit(XML))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "a.xml")) + ".*" + message):
        read_voc_annotation(tmp_path / "a.xml")
