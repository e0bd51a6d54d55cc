"""Small networks and configurations shared by the tests."""
import torch
import torch.nn.functional as F
from torch import nn

from flowmaps.config import Config, build_config, preset
from flowmaps.nets.attention import attention


class TinyMLP(nn.Module):
    """f(x, a, b) for x [B, D]."""

    def __init__(self, dim=2, width=32, depth=2):
        super().__init__()
        layers = [nn.Linear(dim + 2, width), nn.GELU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.GELU()]
        layers.append(nn.Linear(width, dim))
        self.body = nn.Sequential(*layers)

    def forward(self, x, a, b):
        return self.body(torch.cat([a[:, None], b[:, None], x], dim=1))


class TinyConvAttn(nn.Module):
    """A conv net with GroupNorm and F.scaled_dot_product_attention, x [B, C, H, W]."""

    def __init__(self, channels=1, width=8, sdpa=True):
        super().__init__()
        self.sdpa = sdpa
        self.inp = nn.Conv2d(channels + 2, width, 3, padding=1)
        self.norm = nn.GroupNorm(2, width)
        self.qkv = nn.Conv2d(width, 3 * width, 1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        self.heads = 2

    def forward(self, x, a, b):
        B, _, H, W = x.shape
        tmaps = torch.stack([a, b], 1)[:, :, None, None].expand(B, 2, H, W)
        h = F.silu(self.norm(self.inp(torch.cat([x, tmaps], 1))))
        q, k, v = self.qkv(h).reshape(B, 3, self.heads, -1, H * W).transpose(-1, -2).unbind(1)
        att = F.scaled_dot_product_attention(q, k, v) if self.sdpa else attention(q, k, v)
        h = h + att.transpose(-1, -2).reshape(B, -1, H, W)
        return self.out(h)


def path_batch(problem, n, gen=None, full_square=False):
    """(x_s, dx_s, s, t, x0, x1) on the linear interpolant, float64."""
    g = gen or torch.Generator().manual_seed(1)
    x1 = problem.sample_data(n, g)
    x0 = problem.sigma * torch.randn(x1.shape, generator=g, dtype=x1.dtype)
    a, b = torch.rand(n, generator=g, dtype=x1.dtype), torch.rand(n, generator=g, dtype=x1.dtype)
    s, t = (a, b) if full_square else (torch.minimum(a, b), torch.maximum(a, b))
    x_s = (1 - s[:, None]) * x0 + s[:, None] * x1
    return x_s, x1 - x0, s, t, x0, x1


def gradients_through_the_jvp(fm, x, s, t, backends=("func", "forward_ad", "fd")):
    """backend -> the gradient (all parameters, flattened) of |d/dt X_{s,t}(x)|^2 through each JVP backend."""
    grads = {}
    for backend in backends:
        fm.zero_grad()
        fm.X_and_dt(x, s, t, backend)[1].square().sum().backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None])
    return grads


def map_jvp_report(fm, x, s, t, wrt):
    """check_jvp's report for the JVP of X_{s,t}(x) in ``wrt`` ("t", "s" or "x") against finite differences."""
    from flowmaps import check_jvp

    fns = {"t": (lambda tt: fm.X(x, s, tt), (t,), (torch.ones_like(t),)),
           "s": (lambda ss: fm.X(x, ss, t), (s,), (torch.ones_like(s),)),
           "x": (lambda xx: fm.X(xx, s, t), (x,), (torch.randn_like(x),))}
    fn, p, v = fns[wrt]
    return check_jvp(fn, p, v)


def explicit_tangent_errors(fm, fm64, x, s, t, cond=None, seed=0):
    """direction -> (relative error of the explicit tangent of X against torch.func's in the
    network's dtype, the same in float64 against central differences), for tangents in t, s, x,
    (x, s) and all three. ``fm64`` is a float64 copy of ``fm``."""
    from flowmaps.jvp import jvp, relative_error

    cond = cond or {}
    c64 = {k: (v.double() if v.is_floating_point() else v) for k, v in cond.items()}
    g = torch.Generator().manual_seed(seed)
    rand = lambda like: torch.randn(like.shape, generator=g, dtype=like.dtype)  # noqa: E731
    directions = {
        "t": (None, None, torch.ones_like(t)),
        "s": (None, torch.ones_like(s), None),
        "x": (rand(x), None, None),
        "x,s": (rand(x), torch.ones_like(s), None),
        "all": (rand(x), rand(s), rand(t)),
    }
    x64, s64, t64 = x.double(), s.double(), t.double()
    errors = {}
    with torch.no_grad():
        for name, tangents in directions.items():
            X, dX = fm.X_jvp(x, s, t, *tangents, "explicit", **cond)
            X_ref, dX_ref = fm.X_jvp(x, s, t, *tangents, "func", **cond)
            assert relative_error(X, X_ref) < 1e-6, name
            d64 = [None if d is None else d.double() for d in tangents]
            _, dX64 = fm64.X_jvp(x64, s64, t64, *d64, "explicit", **c64)
            moving = [(n, p, d) for n, p, d in zip("xst", (x64, s64, t64), d64) if d is not None]

            def fn(*ps, moving=moving):
                args = dict(x=x64, s=s64, t=t64) | {n: p for (n, _, _), p in zip(moving, ps)}
                return fm64.X(args["x"], args["s"], args["t"], **c64)

            _, fd = jvp(fn, [p for _, p, _ in moving], [d for _, _, d in moving], backend="fd", fd_eps=1e-6)
            errors[name] = (relative_error(dX, dX_ref), relative_error(dX64, fd))
    return errors


def small_config(preset_name: str, method: str, net: dict, small_train: dict, **sections: dict) -> Config:
    """Preset ``preset_name`` with ``method``, the ``net`` section replaced, the ``small_train``
    keys set in ``train``, then each section in ``sections`` (``train`` too) updated."""
    base = preset(preset_name)
    base["method"] = method
    base["net"] = net
    base["train"].update(small_train)
    for k, v in sections.items():
        base.setdefault(k, {}).update(v)
    return build_config(base)
