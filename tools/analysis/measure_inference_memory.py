"""Peak memory and time of one label map from ``(C, h, w)`` logits: mmseg's full resize + arg-max or mmext's.

    python tools/analysis/measure_inference_memory.py --size 6000 6000 [--method bounded|full]
        [--logits smooth|noise] [--classes 150] [--logit-size 512 512]

Each measurement runs in a fresh subprocess (``ru_maxrss`` only grows), which prints the peak resident memory
before and after the label map and the wall time. ``smooth`` logits are class regions (random 16x16 logits
upsampled to the logit size, as a network's look); ``noise`` is i.i.d. N(0, 1) per pixel, the worst case for
:func:`mmext.models.segmentors.label_map_from_logits` (every source cell is a class boundary).
"""
import argparse
import json
import resource
import subprocess
import sys
import time


def measure(method: str, size: tuple[int, int], logits_kind: str, classes: int, logit_size: tuple[int, int]
            ) -> dict:
    """Run in this process: build the logits, then time one label map and record the peak-RSS growth."""
    import torch
    import torch.nn.functional as F

    from mmext.models.segmentors import label_map_from_logits

    torch.manual_seed(0)
    if logits_kind == 'smooth':
        logits = F.interpolate(torch.randn(1, classes, 16, 16) * 4, size=logit_size, mode='bilinear')[0]
    else:
        logits = torch.randn(classes, *logit_size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if method == 'full':
        label = F.interpolate(logits[None], size=size, mode='bilinear', align_corners=False)[0].argmax(0).numpy()
    else:
        label = label_map_from_logits(logits, size, align_corners=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(method=method, size=list(size), logits=logits_kind, classes=classes, logit_size=list(logit_size),
                seconds=round(seconds, 2), peak_rss_before_mib=round(before), peak_rss_after_mib=round(after),
                peak_growth_mib=round(after - before), label_map_mib=round(label.nbytes / 2**20))


def main() -> None:
    parser = argparse.ArgumentParser(description='Peak memory and time of a full-size label map')
    parser.add_argument('--size', type=int, nargs=2, default=(6000, 6000), metavar=('H', 'W'))
    parser.add_argument('--method', choices=['bounded', 'full'], nargs='+', default=['bounded'])
    parser.add_argument('--logits', choices=['smooth', 'noise'], default='smooth')
    parser.add_argument('--classes', type=int, default=150)
    parser.add_argument('--logit-size', type=int, nargs=2, default=(512, 512), metavar=('h', 'w'))
    parser.add_argument('--in-process', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        print(json.dumps(measure(args.method[0], tuple(args.size), args.logits, args.classes,
                                 tuple(args.logit_size))))
        return
    for method in args.method:
        cmd = [sys.executable, __file__, '--in-process', '--method', method, '--size', *map(str, args.size),
               '--logits', args.logits, '--classes', str(args.classes), '--logit-size', *map(str, args.logit_size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1], flush=True)


if __name__ == '__main__':
    main()
