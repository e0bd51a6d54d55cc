"""Data: 2-D samplers, user point clouds and image sets from local files."""
from ..errors import MissingDataError
from .images import IMAGE_DATASETS, ImageData, load_images
from .toy2d import TOY, checkerboard, checkerboard_density, load_points

__all__ = ["IMAGE_DATASETS", "ImageData", "MissingDataError", "load_images", "TOY", "checkerboard",
           "checkerboard_density", "load_points"]
