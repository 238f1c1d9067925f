"""jaxinv.io.images.labeled_grid: cells where the layout says, labels and captions drawn."""

import numpy as np
import pytest

from jaxinv.io import images as image_io


def test_cells_labels_and_captions():
  rng = np.random.RandomState(0)
  tiles = [[rng.randint(0, 255, (8, 8, 3)).astype(np.uint8) for _ in range(3)] for _ in range(2)]
  tiles[1][2] = None
  grid, lay = image_io.labeled_grid(tiles, ["image a", "image b"], ["target", "N=1", "N=10"],
                                    captions=[["", "20.1 dB", "25.3 dB"], ["", "19.0 dB", ""]],
                                    min_cell=40)
  assert lay.scale == 5 and lay.cell == 40                    # 8 px enlarged to >= 40 px
  assert grid.shape[:2] == (lay.top(2), lay.left(3))
  for r in range(2):
    for c in range(3):
      cell = grid[lay.top(r):lay.top(r) + lay.cell, lay.left(c):lay.left(c) + lay.cell]
      if tiles[r][c] is None:
        assert (cell == 255).all()
      else:
        np.testing.assert_array_equal(cell[::lay.scale, ::lay.scale], tiles[r][c])
        np.testing.assert_array_equal(cell, np.repeat(np.repeat(tiles[r][c], 5, 0), 5, 1))
  dark = lambda a: (a < 128).any()
  assert dark(grid[:lay.origin[0], lay.left(0):])               # column labels on top
  assert dark(grid[lay.top(0):lay.top(0) + lay.cell, :lay.origin[1]])    # row label of row 0
  assert dark(grid[lay.top(0) + lay.cell:lay.top(1), lay.left(1):lay.left(2)])   # caption "20.1 dB"
  assert not dark(grid[lay.top(1) + lay.cell:lay.top(2), lay.left(2):])          # no caption there
  assert lay.col_labels == ("target", "N=1", "N=10") and lay.captions[0][1] == "20.1 dB"


def test_label_counts_must_match():
  with pytest.raises(ValueError, match="labels"):
    image_io.labeled_grid([[np.zeros((4, 4, 3), np.uint8)]], ["a", "b"], ["x"])
