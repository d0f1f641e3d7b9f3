"""Segment a video (or a folder of frames) and write the prediction overlaid on every frame as a video.

    python tools/demo/video_demo.py VIDEO_OR_FOLDER CONFIG [CHECKPOINT] --out out.mp4 [--device cpu]
        [--opacity 0.5] [--fps 25] [--max-frames N] [--precision bf16] [--deploy] [--channels-last] [--compile]

A folder is read as frames in file-name order (``--fps`` sets the output rate; a video keeps its own). The output
is an OpenCV ``mp4v`` video (``.mp4``) or MJPG (``.avi``) of the input's frame size. A progress bar runs while it
works; at the end it prints the frames written and the segmentation speed (frames per second, model only and
end to end). Without CHECKPOINT the model is randomly initialised (nothing is downloaded).

Before the model is built, an --out that is an input (or any existing file, unless --overwrite) is refused. The
video is written under a temporary name and renamed when complete: a video that yields fewer frames than its
header announces (truncated) or a frame that cannot be read leaves nothing behind and ends with an error.
"""
import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from mmengine.config import DictAction
from tqdm import tqdm

from mmext.apis import inference_segmentor, init_segmentor, load_image
from mmext.apis.precision import add_precision_args, options_from_args
from mmext.datasets.decoding import find_images
from mmext.fileio import atomic_path, check_outputs
from mmext.quiet import quiet_upstream_warnings
from mmext.visualization import overlay

FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Segment a video and write the overlay video')
    parser.add_argument('input', help='video file, or folder of frames (read in file-name order)')
    parser.add_argument('config', help='config file, e.g. configs/upernet_inceptionnext_t_ade20k.py')
    parser.add_argument('checkpoint', nargs='?', default=None, help='segmentor checkpoint; omitted: random weights')
    parser.add_argument('--out', required=True, help='output video, .mp4 (mp4v) or .avi (MJPG)')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument('--opacity', type=float, default=0.5, help='weight of the label colours, 0..1')
    parser.add_argument('--fps', type=float, default=None, help='output frame rate (default: the video\'s; 25 for '
                                                                  'a folder of frames)')
    parser.add_argument('--max-frames', type=int, default=None, help='stop after this many frames')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings, e.g. model.backbone.arch=atto')
    add_precision_args(parser)
    args = parser.parse_args(argv)
    if Path(args.out).suffix.lower() not in FOURCC:
        parser.error(f'--out must end in {" or ".join(FOURCC)}, got {args.out}')
    return args


def open_frames(source: str | Path) -> tuple[Iterator[np.ndarray], int | None, float | None]:
    """``(BGR frames, frame count or None, the video's fps or None)`` of a video file or a folder of images."""
    source = Path(source)
    if source.is_dir():
        paths = find_images(source)
        if not paths:
            raise FileNotFoundError(f'no images in the frame folder {source}')

        def read_folder():
            for path in paths:
                yield load_image(path)  # names an unreadable frame
        return read_folder(), len(paths), None
    if not source.is_file():
        raise FileNotFoundError(f'no video or frame folder {source}')
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ValueError(f'OpenCV cannot open the video {source}')
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS)

    def read_video():
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()
    return read_video(), (count if count > 0 else None), (fps if fps and fps > 0 else None)


def main(argv=None) -> dict:
    quiet_upstream_warnings()
    args = parse_args(argv)
    check_outputs({'--out': args.out}, {'INPUT': args.input, 'CONFIG': args.config, 'CHECKPOINT': args.checkpoint},
                  allow_existing=args.overwrite)
    frames, count, source_fps = open_frames(args.input)
    if args.max_frames is not None:
        count = args.max_frames if count is None else min(count, args.max_frames)
    fps = args.fps or source_fps or 25.
    model = init_segmentor(args.config, args.checkpoint, device=args.device, cfg_options=args.cfg_options,
                           **options_from_args(args).as_kwargs())
    classes = tuple(str(c).strip() for c in model.dataset_meta['classes'])
    palette = np.asarray(model.dataset_meta['palette'], dtype=np.uint8)

    out = Path(args.out)
    writer, written, model_seconds = None, 0, 0.
    start = time.perf_counter()
    with atomic_path(out) as temporary, tqdm(total=count, desc='segmenting', unit='frame') as bar:
        try:
            for frame in frames:
                if args.max_frames is not None and written >= args.max_frames:
                    break
                if writer is None:
                    size = (frame.shape[1], frame.shape[0])
                    fourcc = FOURCC[out.suffix.lower()]
                    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*fourcc), fps, size)
                    if not writer.isOpened():
                        raise OSError(f'OpenCV cannot write {out} ({fourcc}, {size[0]}x{size[1]})')
                elif (frame.shape[1], frame.shape[0]) != size:
                    raise ValueError(f'frame {written} is {frame.shape[1]}x{frame.shape[0]}, the first was '
                                     f'{size[0]}x{size[1]}: a video needs one frame size')
                tic = time.perf_counter()
                label_map = inference_segmentor(model, frame)
                model_seconds += time.perf_counter() - tic
                # no legend: its width follows the classes present, and a video needs one frame size
                writer.write(overlay(frame, label_map, alpha=args.opacity, classes=classes, palette=palette,
                                     legend=False))
                written += 1
                bar.update(1)
                bar.set_postfix(fps=f'{written / model_seconds:.1f}', refresh=False)
        finally:
            if writer is not None:
                writer.release()
        if not written:
            raise ValueError(f'no frames read from {args.input}; nothing written to {out}')
        if count is not None and written < count:
            raise ValueError(f'{args.input} announces {count} frames but only {written} could be read (truncated or '
                             f'corrupt); nothing written to {out}. Pass --max-frames {written} to keep the frames '
                             'that can be read')
    total = time.perf_counter() - start
    summary = dict(frames=written, out=str(out), fps=fps, model_fps=written / model_seconds, total_fps=written / total)
    print(f'wrote {written} frames ({size[0]}x{size[1]}, {fps:g} fps) to {out}; segmentation '
          f"{summary['model_fps']:.2f} frames/s (model), {summary['total_fps']:.2f} frames/s end to end")
    return summary


if __name__ == '__main__':
    main()
