#!/usr/bin/env bash
# The README's "edit a real photo" recipe (e4e -> PTI -> edit), run on the e4e_pti golden fixture
# (an e4e checkpoint and LPIPS files in the official formats, random weights) and the fixture's
# photos; ends with the labelled picture docs/edit_real_photo.png. Run from the repository root:
#   bash experiments/edit_real_photo.sh [WORK_DIR]
set -euo pipefail
JAXINV=${JAXINV:-"python -m jaxinv"}
F=${JAXINV_GOLDEN:-../shared/golden}/e4e_pti
D=$(dirname "$(dirname "$F")")/data/mganprior_examples/face
W=${1:-/tmp/edit_real_photo}
PHOTOS="$D/1_01.png $D/12_01.png $D/Captain_01.png"
set -x
$JAXINV convert $F/e4e_checkpoint.pt $W/models/e4e --option input_size=64
$JAXINV convert $F/lpips_alex_lin_v0.1.pth $W/models/lpips --option backbone=$F/lpips_alex_backbone_random.pth.xz
$JAXINV invert --method e4e --encoder $W/models/e4e --images $PHOTOS --out $W/e4e
$JAXINV invert --method pti --generator $W/models/e4e --init encoder --encoder $W/models/e4e \
    --lpips $W/models/lpips --images $PHOTOS --out $W/pti
python -c "import numpy as np; np.save('$W/age.npy', np.load('$F/fixtures.npz')['e4e.edit.direction'])"
$JAXINV edit --mode interfacegan --generator $W/models/e4e --result $W/e4e/result.npz \
    --boundary $W/age.npy --factors -3 3 --out $W/edit_e4e
$JAXINV edit --mode interfacegan --generator $W/models/e4e --result $W/pti/result.npz \
    --boundary $W/age.npy --factors -3 3 --out $W/edit_pti
python experiments/edit_real_photo_grid.py $W docs/edit_real_photo.png -3 3
