"""OpenGL helpers for the visualizer: image textures (upload, cache, resize) and frame readback.

Import this module only after the OpenGL platform has been chosen (``PYOPENGL_PLATFORM`` is read
when PyOpenGL is first imported): ``viz.app`` does that before importing anything GL-related.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
import OpenGL.GL as gl

__all__ = ["Framebuffer", "Texture", "TextureCache", "read_pixels"]


@dataclass
class Texture:
    """One RGBA8 texture holding an image; re-allocated only when the image size changes."""

    tex_id: int = 0
    width: int = 0
    height: int = 0
    nearest: bool = True

    def upload(self, image: np.ndarray) -> None:
        """Upload an HxW, HxWx1, HxWx3 or HxWx4 uint8 image (row 0 at the top)."""
        rgba = _to_rgba(image)
        h, w = rgba.shape[:2]
        if self.tex_id == 0:
            self.tex_id = int(gl.glGenTextures(1))
            self.width = self.height = 0
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.tex_id)
        # Nearest magnification keeps 32-px generator pixels crisp when shown large.
        mag = gl.GL_NEAREST if self.nearest else gl.GL_LINEAR
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, gl.GL_LINEAR)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, mag)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_S, gl.GL_CLAMP_TO_EDGE)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_T, gl.GL_CLAMP_TO_EDGE)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glPixelStorei(gl.GL_UNPACK_ROW_LENGTH, 0)
        if (w, h) != (self.width, self.height):
            gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGBA8, w, h, 0, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, rgba)
            self.width, self.height = w, h
        else:
            gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, w, h, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, rgba)
        gl.glBindTexture(gl.GL_TEXTURE_2D, 0)

    def delete(self) -> None:
        if self.tex_id:
            gl.glDeleteTextures([self.tex_id])
        self.tex_id = self.width = self.height = 0


class TextureCache:
    """Named textures that are re-uploaded only when their source image object changes.

    Callers pass the same numpy array object frame after frame; an upload happens only when a
    different array (a new render result, a new preview file) arrives, so idle frames cost nothing.
    """

    def __init__(self) -> None:
        self._textures: dict[str, Texture] = {}
        # Holding the source array (not its id) keeps ids from being recycled by a new array.
        self._sources: dict[str, np.ndarray] = {}

    def get(self, name: str, image: np.ndarray, nearest: bool = True) -> Texture:
        tex = self._textures.get(name)
        if tex is None:
            tex = self._textures[name] = Texture(nearest=nearest)
        if self._sources.get(name) is not image or tex.tex_id == 0:
            tex.upload(image)
            self._sources[name] = image
        return tex

    def drop(self, name: str) -> None:
        tex = self._textures.pop(name, None)
        self._sources.pop(name, None)
        if tex is not None:
            tex.delete()

    def clear(self) -> None:
        for name in list(self._textures):
            self.drop(name)


class Framebuffer:
    """An offscreen RGBA8 colour target (for ``--offscreen``: there is no window to draw into)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.fbo = int(gl.glGenFramebuffers(1))
        self.rbo = int(gl.glGenRenderbuffers(1))
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, self.rbo)
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_RGBA8, width, height)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, self.fbo)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_RENDERBUFFER, self.rbo)
        status = gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER)
        if status != gl.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"offscreen framebuffer incomplete (status 0x{int(status):x})")

    def bind(self) -> None:
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, self.fbo)

    def delete(self) -> None:
        gl.glDeleteFramebuffers(1, [self.fbo])
        gl.glDeleteRenderbuffers(1, [self.rbo])


def read_pixels(width: int, height: int) -> np.ndarray:
    """The current read framebuffer as an HxWx3 uint8 image, top row first."""
    gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
    buf = (ctypes.c_ubyte * (width * height * 3))()
    gl.glReadPixels(0, 0, width, height, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, buf)
    # GL's origin is the bottom-left corner; images are stored top row first.
    return np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)[::-1].copy()


def _to_rgba(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise TypeError(f"texture upload needs uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    if channels in (1, 3):
        alpha = np.full(image.shape[:2] + (1,), 255, dtype=np.uint8)
        image = np.concatenate([image, alpha], axis=2)
    elif channels != 4:
        raise ValueError(f"texture upload needs 1, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(image)
