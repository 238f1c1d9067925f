"""The labelled picture of experiments/edit_real_photo.sh: per photo, the photo at the generator's
size, the e4e and PTI reconstructions (PSNR against that photo) and both edits.

  python experiments/edit_real_photo_grid.py WORK_DIR OUT.png FACTOR...   (the edits' --factors)
"""

import json
import os
import sys

import numpy as np


def main(work, out, factors):
  from jaxinv.io import images as image_io
  from jaxinv.io.checkpoints import atomic_write_bytes
  with np.load(os.path.join(work, "pti", "result.npz")) as r:
    names = [str(s) for s in r["names"]]
    steps = [int(s) for s in r["steps"]]
  with open(os.path.join(work, "pti", "config.json")) as f:
    photos = json.load(f)["settings"]["images"]
  rows, captions = [], []
  for name, photo, n in zip(names, photos, steps):
    e4e = image_io.load_rgb_uint8(os.path.join(work, "e4e", f"{name}.png"))
    pti = image_io.load_rgb_uint8(os.path.join(work, "pti", f"{name}.png"))
    x = image_io.to_uint8(image_io.load_images([photo], e4e.shape[0], loader="pti")[0])
    psnr = lambda y: 10 * np.log10(255.0 ** 2 / np.mean((y.astype(float) - x.astype(float)) ** 2))
    frames = []
    for kind in ("e4e", "pti"):
      strip = image_io.load_rgb_uint8(os.path.join(work, f"edit_{kind}", f"{name}_strip.png"))
      frames += np.split(strip, strip.shape[1] // strip.shape[0], axis=1)
    rows.append([x, e4e, pti, *frames])
    captions.append(["", f"{psnr(e4e):.1f} dB", f"{psnr(pti):.1f} dB, {n} steps"]
                    + [""] * len(frames))
  cols = ["photo", "e4e G(E(x))", "PTI tuned G(pivot)"] + \
      [f"{kind}, age {v:+g}" for kind in ("e4e", "PTI") for v in factors]
  grid, _ = image_io.labeled_grid(rows, names, cols, captions)
  import io
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(grid).save(buf, format="PNG")
  atomic_write_bytes(out, buf.getvalue())
  print(f"wrote {out}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], [float(v) for v in sys.argv[3:]])
