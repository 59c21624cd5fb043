"""Feature extraction: the pre-logits representation of any pool, in loader order."""

import numpy as np
import pytest
import torch
from PIL import Image

from simpool.data.folders import ImageList, image_folder
from simpool.evaluate.features import chunks, data_loader, extract_features, format_table, rows_per_chunk


@pytest.mark.parametrize("pool", ["simpool", "default", "gap"])
def test_extract_features_is_forward_head_pre_logits_in_order(pool, tiny_vit):
    torch.manual_seed(0)
    model = tiny_vit(pool, num_classes=5).eval()
    images = torch.randn(7, 3, 32, 32)
    batches = [(images[i : i + 3], torch.arange(i, min(i + 3, 7))) for i in range(0, 7, 3)]
    features, labels = extract_features(model, batches, device="cpu", progress=False)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(images), pre_logits=True)
    assert features.shape == (7, model.num_features)
    torch.testing.assert_close(features, expected)
    assert labels.tolist() == list(range(7))  # loader order kept


def test_extract_features_rejects_empty_loader(tiny_vit):
    with pytest.raises(ValueError, match="no batches"):
        extract_features(tiny_vit(), [], progress=False)


def test_chunks_cover_range_and_budget():
    assert [(s.start, s.stop) for s in chunks(7, 3)] == [(0, 3), (3, 6), (6, 7)]
    assert rows_per_chunk(columns=1000, budget_bytes=8000) == 2  # 2 rows x 1000 float32 = 8000 bytes
    assert rows_per_chunk(columns=10**9, budget_bytes=8) == 1


def test_data_loader_keeps_order_and_batch_size():
    dataset = torch.utils.data.TensorDataset(torch.arange(7.0), torch.arange(7))
    loader = data_loader(dataset, batch_size=3, workers=0, device="cpu")
    assert [len(y) for _, y in loader] == [3, 3, 1] and torch.cat([y for _, y in loader]).tolist() == list(range(7))
    assert not loader.pin_memory  # pinned only for a CUDA device
    assert len(data_loader(dataset, batch_size=3, drop_last=True)) == 2


def test_image_list_crops_boxes_and_image_folder_sorts_classes(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    image[2:5, 3:9] = 255
    Image.fromarray(image).save(tmp_path / "a.png")
    dataset = ImageList([(str(tmp_path / "a.png"), 4)], boxes=[(3, 2, 9, 5)])
    crop, label = dataset[0]
    assert label == 4 and crop.size == (6, 3)  # PIL crop: right/bottom exclusive
    assert np.asarray(crop).min() == 255  # exactly the white rectangle
    for name in ("b_cls", "a_cls"):
        (tmp_path / "folder" / name).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "folder" / name / "x.png")
    folder = image_folder(tmp_path / "folder")
    assert folder.classes == ["a_cls", "b_cls"] and [y for _, y in folder.samples] == [0, 1]
    with pytest.raises(FileNotFoundError):
        image_folder(tmp_path / "missing")
    # numbered by another split's classes: a split lacking 'a_cls' keeps b_cls = 1
    renumbered = image_folder(tmp_path / "folder", classes=["a_cls", "b_cls", "c_cls"])
    assert [y for _, y in renumbered.samples] == [0, 1] and renumbered.targets == [0, 1]
    assert image_folder(tmp_path / "folder", classes=["z", "a_cls", "b_cls"]).targets == [1, 2]
    with pytest.raises(ValueError, match="not among"):
        image_folder(tmp_path / "folder", classes=["a_cls"])


def test_format_table():
    table = format_table([(10, 1.0, 2.5)], ("k", "top1", "top5")).splitlines()
    assert table[0].split() == ["k", "top1", "top5"] and table[2].split() == ["10", "1.00", "2.50"]


def test_format_table_shows_a_small_float_instead_of_0_00():
    table = format_table([(0.001, 0.0, 5e-05, 0.5)], ("lr", "zero", "small", "half")).splitlines()
    assert table[2].split() == ["0.001", "0.00", "5e-05", "0.50"]


def test_features_run_under_bf16_autocast_with_tf32_on_cuda_only(monkeypatch):
    from simpool.evaluate.features import fast_inference, inference_precision

    assert inference_precision(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert inference_precision(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # a V100
    assert inference_precision(torch.device("cuda")) == torch.float16
    tf32 = torch.backends.cuda.matmul.allow_tf32
    with fast_inference(torch.device("cpu")):  # a CPU: float32, nothing changed
        assert not torch.is_autocast_enabled("cpu") and torch.backends.cuda.matmul.allow_tf32 == tf32


def test_extract_features_on_the_cpu_is_float32_without_autocast():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward_features(self, x):
            seen.append(torch.is_autocast_enabled("cpu"))
            return self.linear(x.mean((2, 3)))  # (B, 3) -> (B, 2)

        def forward_head(self, x, pre_logits=False):
            return x

    features, _ = extract_features(Probe(), [(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]))], progress=False)
    assert seen == [False] and features.dtype == torch.float32


def test_extract_features_enters_fast_inference_once_not_per_batch(monkeypatch, tiny_vit):
    import contextlib

    from simpool.evaluate import features as features_module

    entered = []

    @contextlib.contextmanager
    def counting(device):
        entered.append(device)
        yield

    monkeypatch.setattr(features_module, "fast_inference", counting)
    images = torch.randn(5, 3, 32, 32)
    batches = [(images[i : i + 2], torch.arange(i, min(i + 2, 5))) for i in range(0, 5, 2)]  # 3 batches
    extract_features(tiny_vit().eval(), batches, device="cpu", progress=False)
    assert entered == [torch.device("cpu")]  # per batch: 3 entries, each saving and restoring the TF32 flags
