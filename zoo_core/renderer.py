"""The Renderer interface: scene models that turn cameras into images (NeRF implements it)."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class Cameras:
    """Pinhole cameras in the Blender/OpenGL convention (camera looks along -z, +y up, +x right).

    camera_to_world: ``(N, 4, 4)`` (or ``(4, 4)``) camera-to-world matrices.
    focal:           focal length in pixels (square pixels).
    width, height:   image size in pixels.
    cx, cy:          principal point in pixels; the image centre when None.
    """

    camera_to_world: torch.Tensor
    focal: float
    width: int
    height: int
    cx: Optional[float] = None
    cy: Optional[float] = None

    def __post_init__(self) -> None:
        c2w = torch.as_tensor(self.camera_to_world, dtype=torch.float32)
        if c2w.ndim == 2:
            c2w = c2w[None]
        if c2w.shape[-2:] not in ((4, 4), (3, 4)):
            raise ValueError(f"camera_to_world must be (N, 4, 4) or (N, 3, 4), got {tuple(c2w.shape)}")
        self.camera_to_world = c2w
        if self.cx is None:
            self.cx = self.width / 2
        if self.cy is None:
            self.cy = self.height / 2

    def __len__(self) -> int:
        return self.camera_to_world.shape[0]

    def __getitem__(self, index) -> "Cameras":
        c2w = self.camera_to_world[index]
        return Cameras(c2w, self.focal, self.width, self.height, self.cx, self.cy)

    def resized(self, width: int, height: int) -> "Cameras":
        """The same cameras at another resolution (focal and principal point scale with it)."""
        scale = width / self.width
        return Cameras(self.camera_to_world, self.focal * scale, width, height, self.cx * scale, self.cy * height / self.height)

    def generate_rays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ray origins and (unnormalized) directions, each ``(N, H, W, 3)`` in world space.

        Pixel ``(u, v)`` has camera-space direction ``((u - cx) / f, -(v - cy) / f, -1)``.
        """
        c2w = self.camera_to_world
        v, u = torch.meshgrid(
            torch.arange(self.height, dtype=torch.float32, device=c2w.device),
            torch.arange(self.width, dtype=torch.float32, device=c2w.device),
            indexing="ij",
        )
        dirs = torch.stack([(u - self.cx) / self.focal, -(v - self.cy) / self.focal, -torch.ones_like(u)], -1)
        directions = torch.einsum("hwj,nij->nhwi", dirs, c2w[:, :3, :3])
        origins = c2w[:, None, None, :3, 3].expand_as(directions)
        return origins, directions


def orbit_poses(n: int, *, radius: float = 4.0, elevation_deg: float = 30.0) -> torch.Tensor:
    """``n`` camera-to-world matrices on a circle around the origin, looking at it (a turntable)."""
    poses = []
    elevation = math.radians(elevation_deg)
    for i in range(n):
        azimuth = 2 * math.pi * i / n
        position = torch.tensor(
            [radius * math.cos(elevation) * math.cos(azimuth),
             radius * math.cos(elevation) * math.sin(azimuth),
             radius * math.sin(elevation)]
        )
        forward = -position / position.norm()  # camera -z points at the origin
        right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0]))
        right = right / right.norm()
        up = torch.linalg.cross(right, forward)
        pose = torch.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, position
        poses.append(pose)
    return torch.stack(poses)


class Renderer(abc.ABC):
    """A scene model that renders images from cameras."""

    @abc.abstractmethod
    def render(self, cameras: Cameras, **options) -> dict[str, torch.Tensor]:
        """Render every camera. Returns at least ``"rgb"``: ``(N, H, W, 3)`` in ``[0, 1]``, and
        ``"depth"``: ``(N, H, W)`` (expected ray distance)."""

    def turntable_cameras(self, frames: int, *, width: Optional[int] = None, height: Optional[int] = None) -> Cameras:
        """``frames`` cameras circling the scene at its default intrinsics (``zoo render`` uses them)."""
        raise NotImplementedError(f"{type(self).__name__} does not define a turntable")
