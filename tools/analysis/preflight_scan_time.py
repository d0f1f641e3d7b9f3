"""Time :func:`mmext.datasets.preflight.preflight_check` on a synthetic ADE20K-sized split.

    python tools/analysis/preflight_scan_time.py DIR [--samples 20000] [--full-decode] [--workers N]

Writes (once) DIR/images/*.jpg (683x512) and DIR/annotations/*.png, one encoded file copied per sample, then times
one header scan (or full decode) of all samples. The first run after writing is warm in the page cache; drop the
cache (``echo 3 > /proc/sys/vm/drop_caches``, root) before a run for the cold figure.
"""
import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from mmext.datasets.preflight import preflight_check


def write_split(root: Path, samples: int) -> list[dict]:
    """``samples`` image/annotation pairs under ``root`` (kept if already there), as mmseg ``data_list`` entries."""
    images, annotations = root / 'images', root / 'annotations'
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    jpg = cv2.imencode('.jpg', rng.integers(0, 256, (512, 683, 3), dtype=np.uint8))[1].tobytes()
    png = cv2.imencode('.png', rng.integers(0, 151, (512, 683), dtype=np.uint8))[1].tobytes()
    infos = []
    for i in range(samples):
        img, seg = images / f'{i:06d}.jpg', annotations / f'{i:06d}.png'
        if not img.exists():
            img.write_bytes(jpg)
            seg.write_bytes(png)
        infos.append(dict(img_path=str(img), seg_map_path=str(seg)))
    return infos


def main() -> None:
    parser = argparse.ArgumentParser(description='Time the preflight data check on a synthetic split')
    parser.add_argument('root', type=Path, help='folder for the synthetic split (reused if present)')
    parser.add_argument('--samples', type=int, default=20000)
    parser.add_argument('--full-decode', action='store_true')
    parser.add_argument('--workers', type=int, default=None)
    args = parser.parse_args()
    infos = write_split(args.root, args.samples)
    start = time.perf_counter()
    report = preflight_check(infos, 150, reduce_zero_label=True, full_decode=args.full_decode, workers=args.workers)
    seconds = time.perf_counter() - start
    print(f'{report.checked} samples ({2 * report.checked} files), {len(report.problems)} problem(s), '
          f'{"full decode" if args.full_decode else "headers"}: {seconds:.1f} s')


if __name__ == '__main__':
    main()
