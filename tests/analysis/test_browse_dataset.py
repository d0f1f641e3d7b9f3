"""tools/analysis/browse_dataset.py: pictures of the augmented training samples, on the real ADE20K samples."""
import cv2
import numpy as np
import pytest

from mmext.fileio import OutputPathError


def test_browse_writes_augmented_samples(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path, capsys):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=2)
    written = load_tool('tools/analysis/browse_dataset.py').main([str(cfg), '--out-dir', str(tmp_path / 'b'),
                                                                  '-n', '2'])
    assert [p.name for p in written] == ['ADE_val_00000001_0000.png', 'ADE_val_00000002_0001.png']
    for path in written:
        picture = cv2.imread(str(path))
        # at most the train pipeline's 64x64 crop (of a resize by 0.5..2 to 256x64), not the 683x512 raw image
        assert picture.shape[0] <= 64
        white = (picture == 255).all(axis=(0, 2))
        width = next(c for c in range(1, 65) if white[c:c + 4].all())  # image | 4-px gap | overlay | legend
        image, painted = picture[:, :width], picture[:, width + 4:2 * width + 4]
        assert np.abs(image.astype(int) - painted.astype(int)).mean() > 1  # the label overlay is drawn
        assert picture.shape[1] > 2 * width + 4  # and a legend of the classes in the crop
    assert 'wrote 2 pictures of the train pipeline (3 samples in all)' in capsys.readouterr().out


def test_browse_refuses_out_dir_over_the_data_or_foreign_files(load_tool, write_tiny_seg_config, ade20k_samples,
                                                               tmp_path):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=2)
    tool = load_tool('tools/analysis/browse_dataset.py')
    images = ade20k_samples / 'images' / 'validation'
    with pytest.raises(OutputPathError, match=f'--out-dir {images} lies inside the input train data'):
        tool.main([str(cfg), '--out-dir', str(images), '-n', '1'])
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'notes.txt').write_text('mine')
    with pytest.raises(OutputPathError, match='notes.txt exists and this run did not create it'):
        tool.main([str(cfg), '--out-dir', str(tmp_path / 'b'), '-n', '1'])
    assert (tmp_path / 'b' / 'notes.txt').read_text() == 'mine'
