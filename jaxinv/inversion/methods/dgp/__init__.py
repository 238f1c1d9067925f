"""Deep Generative Prior (Pan et al., ECCV 2020): progressive reconstruction with generator fine-tuning.

Per image DGP optimises the latent ``z`` *and the BigGAN generator's weights* against a
degraded observation, stage by stage, unlocking generator blocks from shallow to deep:

1. **candidate search** (:func:`select_z`): ``select_num`` draws ``z ~ N(0, sample_std^2)``
   (and a random class if it is unknown), each scored by the discriminator-feature loss with
   ``ftr_num = 3`` between the *target-path* degradation of ``G(z, y)`` and the target; the
   best is kept;
2. **stages** (:func:`run`): stage ``s`` runs ``iterations[s]`` steps of
   ``w_D[s] * ftr_loss(ftr_num[s]) + w_mse[s] * mse + w_nll * mean(z^2 / 2)`` on the
   generator-path degradation of ``G(z, shared(y), use_in[s])``; both Adam optimisers use
   DGP's ``betas = (0, 0.999)``, ``eps = 1e-8``; G group ``i`` (0 = ``linear`` [+ ``shared``],
   i = GBlock i-1 with its attention) has lr ``G_lrs[s] * lr_ratio[s]**i`` if
   ``i < ft_num[s]`` else 0. Locked groups keep updating their Adam moments, as torch does,
   so the optimiser is :func:`make_optimizer`: an ``optax.multi_transform`` over group labels,
   each ``scale_by_adam`` followed by its per-step lr table (data, not code branches).

Batched per-image fine-tuning: B images optimise B generator copies in one jitted program.
The optimised variables are ``{"z": [B, dim_z], "G": G params with a leading [B] axis}``;
the one-image objective is ``vmap``-ed over them. Schedules are data
(:class:`Schedule`, ``jaxinv/assets/dgp_schedules/*.json``).

Every image starts from fresh optimiser state (as every golden fixture does). The official
``main.py`` keeps its Adam states alive across the images of a list; that couples an image's
result to its predecessors, which batched runs deliberately do not reproduce.

Memory (float32, from shapes: ``experiments/bench/dgp_memory.py``): per image the G copy,
Adam's two moments, the gradient and the saved activations of one step come to 96.5 MiB for
the fixture model (largest batch in 24 GiB: 254), 1.93 GiB for BigGAN-128 at ch 96 (batch 12)
and 2.73 GiB for BigGAN-256 (batch 9).

One module per concern: :mod:`.schedule` (stages as data), :mod:`.degradations`,
:mod:`.objective` (loss and optimisers), :mod:`.search` (candidate z), :mod:`.stages` (the
batched run and the driver method), :mod:`.evaluation` (image loading, metrics),
:mod:`.manipulations` and :mod:`.memory`; every public name is re-exported here.

Images here are NHWC in [-1, 1]. ``degrade`` (generator path) and ``degrade_target``
(observed-image path, e.g. DGP's PIL Lanczos for SR) come from :mod:`jaxinv.tasks`.

References:
  Pan et al., Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation, https://arxiv.org/abs/2003.13659
"""

from jaxinv.inversion.methods.dgp.degradations import DEGRADING_MODES, degradation, target_of
from jaxinv.inversion.methods.dgp.evaluation import (hole_begin_end, load_image, load_image_uint8,
                                                     metrics, restore_l_channel)
from jaxinv.inversion.methods.dgp.manipulations import (biggan_embed, category_transfer,
                                                        interpolate_params, jitter, morph)
from jaxinv.inversion.methods.dgp.memory import state_bytes_per_image
from jaxinv.inversion.methods.dgp.objective import (feature_loss, ftr_mask, lr_table,
                                                    make_optimizer, masked_feature_loss, objective)
from jaxinv.inversion.methods.dgp.schedule import CONFIG_DIR, Schedule, Stage, load_schedule
from jaxinv.inversion.methods.dgp.search import draw_candidates, select_z
from jaxinv.inversion.methods.dgp.stages import DGPResult, Method, invert, run

__all__ = ["Stage", "Schedule", "load_schedule", "CONFIG_DIR", "DEGRADING_MODES", "degradation",
           "target_of", "feature_loss", "masked_feature_loss", "objective", "ftr_mask",
           "make_optimizer", "lr_table", "draw_candidates", "select_z", "run", "invert",
           "DGPResult", "Method", "load_image", "load_image_uint8", "metrics",
           "restore_l_channel", "hole_begin_end", "jitter", "morph", "category_transfer",
           "interpolate_params", "biggan_embed", "state_bytes_per_image"]
