"""Adapters for timm (``timm:NAME``) and torchvision (``tv:NAME``) classifiers.

Models are always built without downloading anything (``pretrained=False`` /
``weights=None``). Pretrained weights come only from a local file:
``create_external("tv:resnet18", 10, pretrained="resnet18-f37072fd.pth")``.
timm and torchvision are imported only when such a model is requested.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError, did_you_mean
from .checkpoint import compare, describe, read_state_dict

PREFIXES = ("timm", "tv")


class ExternalModel(nn.Module):
    """Wraps a timm / torchvision classifier: ``forward`` gives logits, ``forward_features`` the pooled
    (N, num_features) input of the final classification layer.

    The wrapped model lives in ``net`` (state-dict keys ``net.*``);
    ``load_weights`` also accepts checkpoints of the bare model.
    """

    def __init__(self, net: nn.Module, name: str, head: nn.Module, timm_head: bool = False) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self._head_name = next(n for n, m in net.named_modules() if m is head)
        self._timm_head = timm_head  # timm's forward_head(..., pre_logits=True) gives the pooled features
        self.num_features = int(head.in_features if isinstance(head, nn.Linear) else head.in_channels)

    @property
    def wrapped_model(self) -> nn.Module:
        return self.net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_features(self, x: Tensor) -> Tensor:
        if self._timm_head:
            return self.net.forward_head(self.net.forward_features(x), pre_logits=True).flatten(1)
        captured: list[Tensor] = []
        head = self.net.get_submodule(self._head_name)
        handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.net(x)
        finally:
            handle.remove()
        feats = captured[-1]
        return feats.mean(dim=(2, 3)) if feats.dim() == 4 else feats.flatten(1)  # conv heads see a map

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_features={self.num_features}"


class _TimmHead(nn.Module):
    """timm's head applied to pooled (N, C) features: its global pool sees a 1x1 map, which it leaves as is."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_net", net)   # not a submodule: the wrapper adds no state-dict keys

    def forward(self, pooled: Tensor) -> Tensor:
        return self._net.forward_head(pooled[:, :, None, None])


class SpatialExternalModel(ExternalModel):
    """An external CNN whose final feature map kdzoo can reach (torchvision ResNets, timm CNNs with average
    pooling): ``forward_feature_map`` gives it before global pooling, ``classifier`` maps pooled features
    to logits, so ``forward(x) == classifier(forward_feature_map(x).mean((2, 3)))``."""

    def forward_feature_map(self, x: Tensor) -> Tensor:
        net = self.net
        if self._timm_head:
            return net.forward_features(x)
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))

    @property
    def classifier(self) -> nn.Module:
        return _TimmHead(self.net) if self._timm_head else self.net.fc


def _has_spatial_map(prefix: str, net: nn.Module, timm_head: bool) -> bool:
    """torchvision ResNets, and timm models with an average global pool over a 4-D forward_features output."""
    if prefix == "timm":
        if not timm_head:
            return False
        pool = getattr(net, "global_pool", None)
        # transformers pool tokens, not a map; their forward_features is (N, L, C)
        return getattr(pool, "pool_type", None) == "avg" and not hasattr(net, "patch_embed")
    import torchvision.models as tvm
    return type(net) is tvm.ResNet


def _split(name: str) -> tuple[str, str]:
    prefix, _, model = name.partition(":")
    if prefix not in PREFIXES or not model:
        raise ConfigError(f"unknown model source '{prefix}' in '{name}' (external models are named "
                          f"timm:NAME or tv:NAME){did_you_mean(prefix, PREFIXES)}")
    return prefix, model


def _square(image_size: Any) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return image_size
    h, w = image_size
    return h if h == w else None


def _build_timm(model: str, num_classes: int, in_channels: int, image_size: Any, kwargs: dict) -> tuple:
    import timm  # here, not at the top: ~2 s to import (python -X importtime), needed only for timm: models
    base = model.split(".")[0]  # "resnet18.a1_in1k" names a pretrained tag of "resnet18"
    known = timm.list_models()
    if base not in known:
        raise ConfigError(f"unknown timm model '{model}'{did_you_mean(base, known)} (see timm.list_models())")
    args = dict(pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
    if image_size is not None and "img_size" not in kwargs:
        try:  # transformers need the input size; convolutional nets reject the keyword
            net = timm.create_model(model, img_size=image_size, **args)
        except TypeError:
            net = timm.create_model(model, **args)
    else:
        net = timm.create_model(model, **args)
    head = _classifier(net, num_classes, preferred=net.get_classifier())
    return net, head, hasattr(net, "forward_head")


def _build_torchvision(model: str, num_classes: int, in_channels: int, image_size: Any, kwargs: dict) -> tuple:
    import torchvision.models as tvm  # here: seconds to import, needed only for tv: models
    known = tvm.list_models(module=tvm)  # classification models only
    if model not in known:
        raise ConfigError(f"unknown torchvision model '{model}'{did_you_mean(model, known)} "
                          f"(see torchvision.models.list_models())")
    args = dict(weights=None, num_classes=num_classes, **kwargs)
    side = _square(image_size)
    if side is not None and "image_size" not in kwargs:
        try:  # ViTs take image_size; other architectures reject it
            net = tvm.get_model(model, image_size=side, **args)
        except TypeError:
            net = tvm.get_model(model, **args)
    else:
        net = tvm.get_model(model, **args)
    if in_channels != 3:
        _replace_first_conv(net, in_channels)
    return net, _classifier(net, num_classes), False


def _replace_first_conv(net: nn.Module, in_channels: int) -> None:
    """torchvision builds 3-channel stems only: swap the first 3-input conv for one taking ``in_channels``."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            new = nn.Conv2d(in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                            module.dilation, module.groups, module.bias is not None, module.padding_mode)
            parent_name, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent_name) if parent_name else net, attr, new)
            return
    raise ConfigError(f"cannot adapt {type(net).__name__} to {in_channels} input channels (no 3-channel conv)")


def _classifier(net: nn.Module, num_classes: int, preferred: nn.Module | None = None) -> nn.Module:
    """The final layer producing the ``num_classes`` logits (a Linear, or a 1x1 Conv in e.g. SqueezeNet)."""
    if isinstance(preferred, (nn.Linear, nn.Conv2d)):
        return preferred
    last = None
    for module in net.modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            last = module
        elif isinstance(module, nn.Conv2d) and module.out_channels == num_classes and module.kernel_size == (1, 1):
            last = module
    if last is None:
        raise ConfigError(f"cannot find the classification layer of {type(net).__name__}")
    return last


def _load_pretrained(net: nn.Module, head: nn.Module, path: str) -> None:
    """Load ``path`` into ``net``; only the classifier may differ in shape (or be absent)."""
    state_dict = read_state_dict(path)
    own = net.state_dict()
    # a grey-scale model from RGB weights: sum the stem filters over the colour channels (as timm does)
    for key, value in list(state_dict.items()):
        if (key in own and value.dim() == 4 and own[key].dim() == 4 and own[key].shape[1] == 1
                and value.shape[1] == 3 and value.shape[0] == own[key].shape[0]):
            state_dict[key] = value.sum(dim=1, keepdim=True)
    head_name = next(n for n, m in net.named_modules() if m is head)
    head_keys = {f"{head_name}.{k}" for k in head.state_dict()}
    report = compare(net, state_dict)
    report["missing"] = [k for k in report["missing"] if k not in head_keys]
    report["mismatched"] = [m for m in report["mismatched"] if m[0] not in head_keys]
    if report["missing"] or report["unexpected"] or report["mismatched"]:
        raise CheckpointError(f"pretrained weights {path} do not fit {type(net).__name__} "
                              f"(only the classifier '{head_name}' may differ): {describe(report)}")
    fitting = {k: v for k, v in state_dict.items() if k not in head_keys or v.shape == own[k].shape}
    net.load_state_dict(fitting, strict=False)


def create_external(name: str, num_classes: int, in_channels: int | None = None,
                    image_size: tuple[int, int] | int | None = None, pretrained: str | None = None,
                    **kwargs: Any) -> ExternalModel:
    """Build ``timm:NAME`` or ``tv:NAME`` with ``num_classes`` outputs, never downloading weights.

    ``in_channels`` (default 3) goes to timm's ``in_chans``; for torchvision the
    first 3-channel convolution is replaced. ``image_size`` is passed to models
    that take it (ViTs). Other keywords go to the model constructor.

    ``pretrained`` is a local checkpoint file (e.g. a timm/torchvision ImageNet
    ``.pth``). Every weight must fit, except the classification layer: when
    ``num_classes`` differs from the file's (1000 for ImageNet), that layer keeps
    its fresh initialization, which is what fine-tuning or distilling onto a new
    label set needs. RGB stem weights are summed for one-channel models.
    """
    prefix, model = _split(name)
    channels = 3 if in_channels is None else int(in_channels)
    build = _build_timm if prefix == "timm" else _build_torchvision
    net, head, timm_head = build(model, int(num_classes), channels, image_size, kwargs)
    if pretrained:
        _load_pretrained(net, head, str(pretrained))
    cls = SpatialExternalModel if _has_spatial_map(prefix, net, timm_head) else ExternalModel
    return cls(net, name, head, timm_head)


__all__ = ["ExternalModel", "SpatialExternalModel", "create_external"]
