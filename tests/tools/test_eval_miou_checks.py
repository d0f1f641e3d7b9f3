"""eval_miou.py checks --out-json before evaluating (export_onnx.py --check with a tiny image: test_export_onnx.py)."""
import sys

import pytest


def test_eval_miou_unwritable_out_json_fails_before_evaluating(load_tool, repo_root, write_tiny_seg_config,
                                                               ade20k_samples, tmp_path, monkeypatch):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    out_json = blocker / 'miou.json'
    # The checkpoint does not exist: evaluating first would fail on it, not on --out-json.
    monkeypatch.setattr(sys, 'argv', ['tools/eval_miou.py', str(cfg), str(tmp_path / 'missing.pth'),
                                      '--out-json', str(out_json), '--work-dir', str(tmp_path / 'work')])
    with pytest.raises(SystemExit) as exc:
        load_tool('tools/eval_miou.py').main()
    assert str(exc.value.code).startswith(f'--out-json {out_json}: cannot create folder {blocker}')
    assert not (tmp_path / 'work').exists() or not list((tmp_path / 'work').rglob('*.log'))

