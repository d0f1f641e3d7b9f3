"""Time :func:`mmext.datasets.preflight.preflight_check` on an ADE20K-sized split, and extrapolate to ADE20K.

    python tools/analysis/preflight_scan_time.py DIR [--samples 1000] [--workers N] [--repeat 3]

Writes (once) DIR/images/*.jpg (683x512, ADE20K's typical size, smooth content like a photo: about 60 KB) and
DIR/annotations/*.png (class regions, 150 classes), one distinct file pair per sample, then times full scans
(every image and label decoded with the loaders' rules, labels checked against 150 classes) and prints the best
time per 1,000 samples and the extrapolation to ADE20K's 22,210 samples (20,210 train + 2,000 val). The files are
warm in the page cache after writing; drop the cache (``echo 3 > /proc/sys/vm/drop_caches``, root) for a cold figure.
"""
import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from mmext.datasets.preflight import default_workers, preflight_check
from mmext.quiet import quiet_upstream_warnings

ADE20K_SAMPLES = 22_210


def write_split(root: Path, samples: int) -> list[dict]:
    """``samples`` image/annotation pairs under ``root`` (kept if already there), as mmseg ``data_list`` entries."""
    images, annotations = root / 'images', root / 'annotations'
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    infos = []
    for i in range(samples):
        img, seg = images / f'{i:06d}.jpg', annotations / f'{i:06d}.png'
        if not img.exists():
            coarse = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            image = cv2.resize(coarse, (683, 512), interpolation=cv2.INTER_CUBIC)
            image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)  # sensor noise
            label = cv2.resize(rng.integers(0, 151, (12, 16), dtype=np.uint8), (683, 512),
                               interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(img), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            cv2.imwrite(str(seg), label)
        infos.append(dict(img_path=str(img), seg_map_path=str(seg)))
    return infos


def main() -> None:
    quiet_upstream_warnings()
    parser = argparse.ArgumentParser(description='Time the preflight data check on an ADE20K-sized split')
    parser.add_argument('root', type=Path, help='folder for the generated split (reused if present)')
    parser.add_argument('--samples', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=None, help='threads (default: one per CPU)')
    parser.add_argument('--repeat', type=int, default=3, help='scans timed; the best is reported')
    args = parser.parse_args()
    infos = write_split(args.root, args.samples)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        report = preflight_check(infos, 150, reduce_zero_label=True, workers=args.workers)
        times.append(time.perf_counter() - start)
    per_1000 = min(times) / report.checked * 1000
    print(f'{report.checked} samples ({2 * report.checked} files), {len(report.problems)} problem(s), '
          f'{args.workers or default_workers()} threads on {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.1f}: best of {args.repeat} {min(times):.2f} s (all: '
          f'{", ".join(f"{t:.2f}" for t in times)}); {per_1000:.2f} s per 1,000 samples, '
          f'{per_1000 * ADE20K_SAMPLES / 1000:.0f} s for ADE20K\'s {ADE20K_SAMPLES:,}')


if __name__ == '__main__':
    main()
