"""tools/demo/video_demo.py on a short video and a folder of frames that the test writes itself (OpenCV)."""
import cv2
import numpy as np
import pytest

from mmext.fileio import OutputPathError

SIZE = (96, 64)  # width, height


def frames(n: int) -> list[np.ndarray]:
    """A bright square moving over a gradient: frames that differ from each other."""
    out = []
    for i in range(n):
        frame = np.tile(np.linspace(0, 200, SIZE[0], dtype=np.uint8)[None, :, None], (SIZE[1], 1, 3))
        frame[10:40, 8 * i:8 * i + 30] = (40, 220, 255)
        out.append(frame)
    return out


def read_video(path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    read = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        read.append(frame)
    capture.release()
    return read, fps


def test_video_in_overlay_video_out(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path, capsys):
    video = tmp_path / 'in.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 12., SIZE)
    assert writer.isOpened()
    source = frames(5)
    for frame in source:
        writer.write(frame)
    writer.release()
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    tool = load_tool('tools/demo/video_demo.py')

    summary = tool.main([str(video), str(cfg), '--out', str(tmp_path / 'out.mp4'), '--opacity', '0.6'])
    written, fps = read_video(tmp_path / 'out.mp4')
    assert summary['frames'] == len(written) == 5 and fps == pytest.approx(12.)  # the video's own rate
    assert all(f.shape == (SIZE[1], SIZE[0], 3) for f in written)
    assert np.abs(written[0].astype(int) - source[0].astype(int)).mean() > 10  # the overlay is painted on
    out, err = capsys.readouterr()
    assert 'segmenting: 100%' in err and f'wrote 5 frames ({SIZE[0]}x{SIZE[1]}, 12 fps)' in out
    assert summary['model_fps'] > 0 and 'frames/s (model)' in out

    folder = tmp_path / 'frames'
    folder.mkdir()
    for i, frame in enumerate(source):
        cv2.imwrite(str(folder / f'{i:04d}.png'), frame)
    summary = tool.main([str(folder), str(cfg), '--out', str(tmp_path / 'out.avi'), '--fps', '5', '--max-frames', '3'])
    written, fps = read_video(tmp_path / 'out.avi')
    assert summary['frames'] == len(written) == 3 and fps == pytest.approx(5.)


def test_bad_inputs_are_named(load_tool, tmp_path):
    tool = load_tool('tools/demo/video_demo.py')
    with pytest.raises(FileNotFoundError, match='no video or frame folder .*missing.mp4'):
        tool.open_frames(tmp_path / 'missing.mp4')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='empty'):
        tool.open_frames(tmp_path / 'empty')
    with pytest.raises(SystemExit):
        tool.parse_args(['in.mp4', 'cfg.py', '--out', 'out.gif'])


def write_avi(path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 12., SIZE)
    for frame in frames(n):
        writer.write(frame)
    writer.release()


def test_out_over_the_input_video_is_refused(load_tool, tmp_path):
    """BAD 6: ``--out <input video>`` destroyed the input (and wrote 11 of 12 frames). Refused before any work."""
    video = tmp_path / 'in.avi'
    write_avi(video, 12)
    before = video.read_bytes()
    tool = load_tool('tools/demo/video_demo.py')
    with pytest.raises(OutputPathError, match=f'--out {video} is the input INPUT {video}'):
        tool.main([str(video), 'no_config_needed.py', '--out', str(video)])
    (tmp_path / 'other.avi').write_bytes(b'somebody else')
    with pytest.raises(OutputPathError, match='other.avi exists and this run did not create it'):
        tool.main([str(video), 'no_config_needed.py', '--out', str(tmp_path / 'other.avi')])
    assert video.read_bytes() == before


def test_truncated_video_is_an_error_and_writes_nothing(load_tool, write_tiny_seg_config, ade20k_samples,
                                                        tmp_path):
    """A video that announces 12 frames and holds 6 wrote 6 frames with exit status 0."""
    video = tmp_path / 'in.avi'
    write_avi(video, 12)
    video.write_bytes(video.read_bytes()[:len(video.read_bytes()) // 2])
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()
    readable = len(read_video(video)[0])
    assert 0 < readable < 12
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    tool = load_tool('tools/demo/video_demo.py')
    with pytest.raises(ValueError, match=rf'announces 12 frames but only {readable} could be read .*nothing written '
                                         rf'to .*out\.avi\. Pass --max-frames {readable}'):
        tool.main([str(video), str(cfg), '--out', str(tmp_path / 'out.avi')])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.avi', 'tiny.py']  # no output, no temporary
    summary = tool.main([str(video), str(cfg), '--out', str(tmp_path / 'out.avi'), '--max-frames', str(readable)])
    assert summary['frames'] == readable and len(read_video(tmp_path / 'out.avi')[0]) == readable
