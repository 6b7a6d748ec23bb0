"""Speed code of the networks, each fast op beside its plain reference implementation.

The network files import the fast ops from here; tests (``tests/test_ops.py``) check each against its
reference, values and gradients; ``reference.py`` swaps a built network's fast layers for reference
twins (``to_reference`` / ``to_fast`` / ``reference_layers``), for tests and benchmarks.

=====================  =========================================  ==========================================
module                 fast                                       reference
=====================  =========================================  ==========================================
``spectral_norm``      ``spectral_norm`` (``SNConv2d``,           ``reference_spectral_norm`` (torch's)
                       ``FP32SpectralNorm``)
``onehot_conv``        ``onehot_conv2d`` (table look-up)          ``reference_onehot_conv2d`` (dense conv)
``upsampled_conv``     ``conv3x3_of_upsampled``,                  ``reference_conv3x3_of_upsampled``,
                       ``UpsampledConv2d``                        ``ReferenceUpsampledConv2d``
``label_image_conv``   ``label_image_conv2d``,                    ``reference_label_image_conv2d``,
                       ``LabelImageConv2d``                       ``ReferenceLabelImageConv2d``
``pixel_conv``         ``pixel_depthwise_conv3x3`` (9 shifted      ``reference_pixel_depthwise_conv3x3``
                       views), ``PixelDepthwiseConv2d``           (unfold), ``ReferencePixelDepthwiseConv2d``
``resize``             ``nearest_resize``, ``upsample2x``         ``reference_nearest_resize``,
                                                                  ``reference_upsample2x``
``segmap``             ``SegmapPyramid`` (one resize per size)    ``F.interpolate`` in every SPADE layer
``reference``          --                                         ``ReferenceSPADE``; the swap helpers
=====================  =========================================  ==========================================
"""

from .label_image_conv import (
    LabelImageConv2d,
    ReferenceLabelImageConv2d,
    label_image_conv2d,
    reference_label_image_conv2d,
)
from .onehot_conv import onehot_conv2d, onehot_index, onehot_table, reference_onehot_conv2d
from .pixel_conv import (
    PixelDepthwiseConv2d,
    ReferencePixelDepthwiseConv2d,
    pixel_depthwise_conv3x3,
    reference_pixel_depthwise_conv3x3,
)
from .reference import REFERENCE_KINDS, ReferenceSPADE, reference_layers, to_fast, to_reference
from .resize import nearest_resize, reference_nearest_resize, reference_upsample2x, upsample2x
from .segmap import SegmapPyramid
from .spectral_norm import FP32SpectralNorm, SNConv2d, reference_spectral_norm, spectral_norm
from .upsampled_conv import (
    ReferenceUpsampledConv2d,
    UpsampledConv2d,
    conv3x3_of_upsampled,
    reference_conv3x3_of_upsampled,
)

__all__ = [
    "FP32SpectralNorm", "LabelImageConv2d", "PixelDepthwiseConv2d", "REFERENCE_KINDS", "ReferenceLabelImageConv2d", "ReferenceSPADE",
    "ReferencePixelDepthwiseConv2d", "ReferenceUpsampledConv2d", "SNConv2d", "SegmapPyramid", "UpsampledConv2d", "conv3x3_of_upsampled",
    "label_image_conv2d", "nearest_resize", "onehot_conv2d", "onehot_index", "onehot_table",
    "pixel_depthwise_conv3x3", "reference_pixel_depthwise_conv3x3",
    "reference_conv3x3_of_upsampled", "reference_label_image_conv2d", "reference_layers", "reference_nearest_resize",
    "reference_onehot_conv2d", "reference_spectral_norm", "reference_upsample2x", "spectral_norm", "to_fast",
    "to_reference", "upsample2x",
]
