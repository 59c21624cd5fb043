"""``simpool bench export``: every layout reads back with this project's loaders (and torchvision's) to the bench."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.datasets import VOCDetection, VOCSegmentation

from simpool.cli import main
from simpool.data.bench import VARIANTS, BenchConfig, SimPoolBench
from simpool.data.bench_export import MANIFEST, class_dir, export
from simpool.data.fashion_mnist import DEFAULT_DIR
from simpool.data.folders import ImageList, image_folder
from simpool.data.in9 import in9_dataset
from simpool.data.voc import read_voc_annotation, voc_image_ids
from simpool.data.wsol import read_wsol_metadata

pytestmark = pytest.mark.skipif(
    not (DEFAULT_DIR / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)

N = 12


def _bench(variant="original"):
    return SimPoolBench("test", variant, num_images=N)


def test_class_dirs_sort_in_label_order():
    names = [class_dir(k) for k in range(10)]
    assert sorted(names) == names and names[0] == "00_t-shirt_top" and names[9] == "09_ankle_boot"


def test_imagefolder_reads_back_exactly(tmp_path):
    export(tmp_path, "imagefolder", "mixed_rand", num_images=N, progress=False)
    folder = image_folder(tmp_path / "test")
    bench = _bench("mixed_rand")
    assert len(folder) == N
    for path, label in folder.samples:
        i = int(path.rsplit("/", 1)[1][:-4])
        assert folder.classes[label] == class_dir(int(bench.labels[i]))  # the bench's class, by folder name
        np.testing.assert_array_equal(np.asarray(folder.loader(path)), bench.render(i)[0])  # PNG is lossless


def test_wsol_metadata_reads_back_with_the_project_reader(tmp_path):
    export(tmp_path, "wsol", "original", num_images=N, progress=False)
    meta = read_wsol_metadata(tmp_path / "metadata" / "test")
    bench = _bench()
    loaded = ImageList([(str(tmp_path / "dataset" / i), meta.class_labels[i]) for i in meta.image_ids])
    assert len(meta.image_ids) == N
    for k, image_id in enumerate(meta.image_ids):
        i = int(image_id.rsplit("/", 1)[1][:-4])
        image, _, box = bench.render(i)
        assert meta.image_sizes[image_id] == (64, 64) and loaded[k][1] == bench.labels[i]
        np.testing.assert_array_equal(meta.boxes[image_id], [box])
        np.testing.assert_array_equal(np.asarray(loaded[k][0]), image)


def test_voc_reads_back_with_torchvision(tmp_path):
    export(tmp_path, "voc", "original", num_images=N, progress=False)
    detection = VOCDetection(str(tmp_path), year="2007", image_set="test")
    segmentation = VOCSegmentation(str(tmp_path), year="2007", image_set="test")
    bench = _bench()
    assert len(detection) == len(segmentation) == N
    assert voc_image_ids(tmp_path, "2007", "test") == [f"test_{i:06d}" for i in range(N)]
    for i in range(N):
        image, target = detection[i]
        _, mask, box = bench.render(i)
        obj = target["annotation"]["object"][0]
        b = obj["bndbox"]
        # VOC is 1-based inclusive: xmin - 1 is the first column, xmax the exclusive end (as LOST reads it)
        assert [int(b["xmin"]) - 1, int(b["ymin"]) - 1, int(b["xmax"]), int(b["ymax"])] == box.tolist()
        assert obj["name"] == class_dir(int(bench.labels[i]))[3:]
        ours = read_voc_annotation(tmp_path / "VOCdevkit" / "VOC2007" / "Annotations" / f"test_{i:06d}.xml")
        # the project's reader turns VOC's 1-based inclusive boxes back into 0-based (LOST: xmin - 1, ymin - 1)
        np.testing.assert_array_equal(ours.boxes, [box])
        assert ours.size == (64, 64) and ours.classes == [obj["name"]]
        assert image.size == (64, 64)
        seg = np.asarray(segmentation[i][1])
        np.testing.assert_array_equal(seg > 0, mask)
        assert set(np.unique(seg[mask])) == {bench.labels[i] + 1}


def test_in9_layout_all_variants(tmp_path):
    export(tmp_path, "in9", "all", num_images=N, progress=False)
    bench = _bench()
    for variant in VARIANTS:
        folder = in9_dataset(tmp_path, variant)
        assert len(folder) == N
        for path, label in folder.samples:  # the NN_ prefix gives the bench's label, whatever folders exist
            assert label == bench.labels[int(path.rsplit("/", 1)[1][:-4])]
    bench = _bench("only_fg")
    mask_folder = tmp_path / "fg_mask" / "val"
    for i in range(N):
        mask = np.load(mask_folder / class_dir(int(bench.labels[i])) / f"{i:06d}.npy", allow_pickle=False)
        image = np.asarray(
            image_folder(tmp_path / "only_fg" / "val").loader(
                str(tmp_path / "only_fg" / "val" / class_dir(int(bench.labels[i])) / f"{i:06d}.png")
            )
        )
        assert (image[~mask] == 0).all()  # only_fg's definition, read back from the files
        np.testing.assert_array_equal(mask, bench.render(i)[1])


def test_cli_export_end_to_end(tmp_path, capsys):
    code = main(
        [
            "bench",
            "export",
            "--variant",
            "no_fg",
            "--format",
            "imagefolder",
            "--split",
            "val",
            "--num-images",
            "5",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0 and str(tmp_path / "val") in capsys.readouterr().out
    folder = image_folder(tmp_path / "val")
    image, label = folder[0]
    assert len(folder) == 5 and isinstance(label, int) and not torch.is_tensor(image)


def test_bad_format_and_variant_raise(tmp_path):
    with pytest.raises(ValueError, match="format"):
        export(tmp_path, "coco")
    with pytest.raises(ValueError, match="in9"):
        export(tmp_path, "voc", "all")


def test_fashion_mnist_dir_points_anywhere(tmp_path, capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    for path in DEFAULT_DIR.glob("*-ubyte.gz"):
        (folder / path.name).symlink_to(path)
    out = tmp_path / "out"
    args = ["bench", "export", "--format", "wsol", "--num-images", "3", "--out", str(out), "--no-progress"]
    assert main([*args, "--fashion-mnist-dir", str(folder)]) == 0
    assert len(read_wsol_metadata(out / "metadata" / "test").image_ids) == 3
    capsys.readouterr()
    assert main([*args, "--fashion-mnist-dir", str(tmp_path / "missing")]) == 2  # a person's mistake: one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fashion-mnist-dir" in err[0] and err[0].startswith("simpool bench: error:")


def _count(folder):
    return sum(1 for path in folder.rglob("*.png"))


def test_an_export_with_another_image_size_or_seed_into_the_same_folder_is_refused(tmp_path):
    # before: the second export overwrote some files and left the others, one folder mixing two benches
    export(tmp_path, "imagefolder", num_images=8, progress=False)
    for config, named in [(BenchConfig(image_size=32), "image_size 64 -> 32"), (BenchConfig(seed=1), "seed 0 -> 1")]:
        with pytest.raises(ValueError, match=f"already holds a bench export with other settings.*{named}"):
            export(tmp_path, "imagefolder", num_images=8, config=config, progress=False)
    with pytest.raises(ValueError, match="format 'imagefolder' -> 'wsol'"):
        export(tmp_path, "wsol", num_images=8, progress=False)
    assert _count(tmp_path) == 8 and json.loads((tmp_path / MANIFEST).read_text())["config"]["image_size"] == 64


def test_fewer_images_or_another_variant_of_a_split_is_refused_and_overwrite_replaces_it(tmp_path):
    export(tmp_path, "wsol", num_images=8, progress=False)
    with pytest.raises(ValueError, match="test: num_images 8 -> 4"):  # the metadata would list 4, 8 would remain
        export(tmp_path, "wsol", num_images=4, progress=False)
    with pytest.raises(ValueError, match="test: variant 'original' -> 'no_fg'"):
        export(tmp_path, "wsol", "no_fg", num_images=8, progress=False)
    export(tmp_path, "wsol", "no_fg", num_images=4, progress=False, overwrite=True)
    assert _count(tmp_path / "dataset") == len(read_wsol_metadata(tmp_path / "metadata" / "test").image_ids) == 4


def test_overwrite_with_another_image_size_clears_every_part_of_the_old_export(tmp_path):
    export(tmp_path, "imagefolder", split="train", num_images=6, progress=False)
    export(tmp_path, "imagefolder", split="test", num_images=4, progress=False)
    export(tmp_path, "imagefolder", split="test", num_images=4, config=BenchConfig(image_size=32), progress=False,
           overwrite=True)  # fmt: skip
    assert not (tmp_path / "train").exists() and _count(tmp_path / "test") == 4
    assert [p["split"] for p in json.loads((tmp_path / MANIFEST).read_text())["parts"]] == ["test"]


def test_other_splits_and_the_same_export_again_are_fine(tmp_path):
    # a train and a test split share a folder; repeating an export (same settings) rewrites the same files
    export(tmp_path, "voc", split="train", num_images=6, progress=False)
    export(tmp_path, "voc", split="test", num_images=4, progress=False)
    export(tmp_path, "voc", split="test", num_images=4, progress=False)
    assert voc_image_ids(tmp_path, "2007", "train") == [f"train_{i:06d}" for i in range(6)]
    assert len(voc_image_ids(tmp_path, "2007", "test")) == 4
    parts = json.loads((tmp_path / MANIFEST).read_text())["parts"]
    assert [(p["split"], p["num_images"]) for p in parts] == [("train", 6), ("test", 4)]
    # replacing one split's part deletes that part's files only
    export(tmp_path, "voc", split="test", num_images=2, progress=False, overwrite=True)
    jpegs = sorted(p.name for p in (tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages").iterdir())
    assert jpegs == [f"test_{i:06d}.jpg" for i in range(2)] + [f"train_{i:06d}.jpg" for i in range(6)]


def test_in9_variants_are_parts_of_their_own(tmp_path):
    export(tmp_path, "in9", "mixed_rand", num_images=4, progress=False)
    export(tmp_path, "in9", "no_fg", num_images=4, progress=False)  # another variant: another folder
    with pytest.raises(ValueError, match="no_fg: num_images 4 -> 2"):
        export(tmp_path, "in9", "no_fg", num_images=2, progress=False)


def test_files_of_an_export_without_a_manifest_are_not_mixed_into(tmp_path):
    export(tmp_path, "imagefolder", num_images=8, progress=False)
    (tmp_path / MANIFEST).unlink()  # an export written before manifests existed
    with pytest.raises(ValueError, match=f"files without a {MANIFEST} manifest"):
        export(tmp_path, "imagefolder", num_images=4, progress=False)
    export(tmp_path, "imagefolder", num_images=4, progress=False, overwrite=True)
    assert _count(tmp_path) == 4


def test_cli_overwrite_replaces_an_export_with_other_settings(tmp_path, capsys):
    from PIL import Image

    args = ["bench", "export", "--num-images", "2", "--out", str(tmp_path), "--no-progress"]
    assert main([*args, "--img-size", "32"]) == 0
    assert main(args) == 2  # another image size in the same folder: refused, one line naming it
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    sizes = {Image.open(path).size for path in (tmp_path / "test").rglob("*.png")}
    assert sizes == {(64, 64)}
