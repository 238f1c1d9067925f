"""Image-restoration tasks: pure, differentiable degradations and their observation/restore rules.

One module per concern: :mod:`~jaxinv.tasks.degradations` (grey, resampling, masking, noise),
:mod:`~jaxinv.tasks.masks` (mask files), :mod:`~jaxinv.tasks.dgp_observation` (DGP's target and
``pre_process``), :mod:`~jaxinv.tasks.restoration` (post-processing), :mod:`~jaxinv.tasks.observe` (observations
and pictures of a run) and
:mod:`~jaxinv.tasks.registry` (:class:`Task`, :func:`make_task`); every name is re-exported here.

Every operator works on NHWC images in [-1, 1] whose last three axes are ``[H, W, C]``; any
leading axes (none for one image, ``[B]`` for a batch) pass through unchanged.

References:
  Gu et al., "Image Processing Using Multi-Code GAN Prior", CVPR 2020 (tasks, §4).
  Pan et al., "Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation", ECCV 2020 (Lanczos downsampler, centre-hole inpainting).
"""

from jaxinv.editing import boundary_frames
from jaxinv.tasks.degradations import (DOWNSAMPLE_MODES, GRAY_WEIGHTS, GRAY_WEIGHTS_DGP,
                                       add_noise, apply_mask, downsample, lanczos_downsample,
                                       lanczos_kernel, resize, resize_matrix, to_gray, upsample)
from jaxinv.tasks.dgp_observation import dgp_degrade, dgp_sr_target
from jaxinv.tasks.masks import center_hole_mask, check_mask, load_mask, resize_mask
from jaxinv.tasks.observe import NOISE_STREAM, as_observed, observations, pictures
from jaxinv.tasks.registry import TASKS, Task, make_task
from jaxinv.tasks.restoration import colorize_restore01, dgp_colorization_restore

__all__ = [
    "TASKS", "DOWNSAMPLE_MODES", "GRAY_WEIGHTS", "GRAY_WEIGHTS_DGP",
    "to_gray", "resize_matrix", "resize", "downsample", "upsample", "lanczos_kernel",
    "lanczos_downsample", "apply_mask", "load_mask", "resize_mask", "add_noise",
    "center_hole_mask", "check_mask", "colorize_restore01", "dgp_sr_target", "dgp_degrade",
    "dgp_colorization_restore", "boundary_frames", "Task", "make_task", "observations",
    "as_observed", "pictures", "NOISE_STREAM",
]
