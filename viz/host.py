"""Where frames go: a GLFW window (interactive) or an EGL surfaceless context (``--offscreen``).

Both hosts give the frame loop in ``viz.app`` the same small surface: feed input to Dear ImGui,
report the display size and UI scale, render the draw data, and read the finished frame back.
Failures to find a display or OpenGL raise :class:`HostError` with one line saying what to do.

PyOpenGL picks its platform (GLX or EGL) when it is first imported, so :func:`select_gl_platform`
must run before this module's OpenGL-using classes are constructed; the imports below that touch
OpenGL are therefore made inside the hosts.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from typing import Any, Protocol

import numpy as np
from imgui_bundle import imgui

log = logging.getLogger(__name__)

__all__ = ["EglHost", "GlfwHost", "Host", "HostError", "select_gl_platform"]

EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
CLEAR_COLOR = (0.18, 0.18, 0.18, 1.0)  # ImGui's dark WindowBg: the root window draws no background
IDLE_AFTER_S = 0.5  # the window counts as idle this long after the last input event


class HostError(RuntimeError):
    """No display or no usable OpenGL: the message says what to do instead."""


def select_gl_platform(offscreen: bool) -> None:
    """Choose PyOpenGL's platform before its first import: EGL offscreen, the default otherwise."""
    import sys

    if "OpenGL" in sys.modules:
        return
    if offscreen:
        os.environ["PYOPENGL_PLATFORM"] = "egl"
    elif os.environ.get("XDG_SESSION_TYPE") == "wayland" and not os.environ.get("PYOPENGL_PLATFORM"):
        # GLFW talks to XWayland here while PyOpenGL would pick Wayland EGL: keep them matched.
        os.environ["PYOPENGL_PLATFORM"] = "x11"
    import OpenGL

    if offscreen:
        try:
            # PyOpenGL's EGL bindings need error checking on when they are imported.
            import OpenGL.EGL  # noqa: F401
        except Exception:  # no libEGL: EglHost reports it with the fix
            pass
    # PyOpenGL checks glGetError after every call by default; the imgui backend makes hundreds of
    # calls per frame, and that checking costs more than the drawing. Debug runs keep it.
    OpenGL.ERROR_CHECKING = os.environ.get("ADA_VIZ_GL_DEBUG") == "1"


class Host(Protocol):
    width: int
    height: int

    def ui_scale(self) -> float: ...
    def should_close(self) -> bool: ...
    def begin_frame(self) -> None: ...
    def end_frame(self, draw_data: Any) -> None: ...
    def read_frame(self) -> np.ndarray: ...
    def wait(self, timeout: float) -> None: ...
    def wake(self) -> None: ...
    def input_active(self, now: float) -> bool: ...
    def close(self) -> None: ...


class GlfwHost:
    """An on-screen window: GLFW for the window and input, imgui-bundle's OpenGL 3 renderer."""

    def __init__(self, width: int, height: int, title: str, vsync: bool = True) -> None:
        import glfw

        self._glfw = glfw
        self._errors: list[str] = []
        glfw.ERROR_REPORTING = "ignore"  # our callback collects errors; no warnings on stderr
        glfw.set_error_callback(lambda code, desc: self._errors.append(_decode(desc)))
        if not glfw.init():
            raise HostError(
                f"no display: {self._last_error() or 'GLFW could not initialise'}; "
                "run inside a desktop session (DISPLAY or WAYLAND_DISPLAY set), under xvfb-run, "
                "or render without a display with --offscreen N --out DIR"
            )
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.SCALE_TO_MONITOR, True)
        self.window = glfw.create_window(width, height, title, None, None)
        if not self.window:
            err = self._last_error() or "window creation failed"
            glfw.terminate()
            raise HostError(
                f"no OpenGL 3.3: {err}; install Mesa (libgl1-mesa-dri, libglx-mesa0) or a GPU driver, "
                "or render without a display with --offscreen N --out DIR"
            )
        glfw.make_context_current(self.window)
        glfw.swap_interval(1 if vsync else 0)
        from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

        host = self
        self.last_input = time.perf_counter()  # perf_counter() of the last input event
        self._buttons_down: set[int] = set()

        class _Renderer(GlfwRenderer):
            # The stock backend asks for the pointer's current position (on X11 a live query)
            # and drops it while the window lacks focus. Use the position the event carries, so
            # a press followed by motion within one frame keeps its order and place, and hover
            # also works in unfocused windows (Xvfb and some tiling setups never focus them).
            def mouse_callback(self, window: Any, x: float, y: float) -> None:
                host.last_input = time.perf_counter()
                self.io.add_mouse_pos_event(x, y)

            # Every input event is stamped, so the app knows when the user stopped (see App.run).
            def keyboard_callback(self, window: Any, key: int, scancode: int, action: int, mods: int) -> None:
                host.last_input = time.perf_counter()
                super().keyboard_callback(window, key, scancode, action, mods)

            def char_callback(self, window: Any, char: int) -> None:
                host.last_input = time.perf_counter()
                super().char_callback(window, char)

            def mouse_button_callback(self, window: Any, button: int, action: int, mods: int) -> None:
                host.last_input = time.perf_counter()
                (host._buttons_down.add if action == glfw.PRESS else host._buttons_down.discard)(button)
                super().mouse_button_callback(window, button, action, mods)

            def scroll_callback(self, window: Any, x_offset: float, y_offset: float) -> None:
                host.last_input = time.perf_counter()
                super().scroll_callback(window, x_offset, y_offset)

            def resize_callback(self, window: Any, width: int, height: int) -> None:
                host.last_input = time.perf_counter()
                super().resize_callback(window, width, height)

        self._renderer = _Renderer(self.window)
        self.width, self.height = glfw.get_window_size(self.window)
        self._dropped: list[str] = []
        glfw.set_drop_callback(self.window, lambda window, paths: self._dropped.extend(str(p) for p in paths))

    def take_dropped(self) -> list[str]:
        """Paths of the files dropped on the window since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def _last_error(self) -> str:
        return self._errors[-1] if self._errors else ""

    def ui_scale(self) -> float:
        # Content scale is the monitor's DPI scale; the framebuffer scale (Retina) is handled by
        # ImGui itself, so only the part beyond it enlarges fonts and sizes.
        sx, _ = self._glfw.get_window_content_scale(self.window)
        fbw, _ = self._glfw.get_framebuffer_size(self.window)
        ww, _ = self._glfw.get_window_size(self.window)
        fb_scale = fbw / ww if ww else 1.0
        return max(0.5, sx / max(fb_scale, 1e-3))

    def should_close(self) -> bool:
        return bool(self._glfw.window_should_close(self.window))

    def begin_frame(self) -> None:
        self._glfw.poll_events()
        self._renderer.process_inputs()
        self.width, self.height = self._glfw.get_window_size(self.window)

    def end_frame(self, draw_data: Any) -> None:
        import OpenGL.GL as gl

        fbw, fbh = self._glfw.get_framebuffer_size(self.window)
        gl.glViewport(0, 0, fbw, fbh)
        gl.glClearColor(*CLEAR_COLOR)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        self._renderer.render(draw_data)

    def present(self) -> None:
        self._glfw.swap_buffers(self.window)

    def input_active(self, now: float) -> bool:
        """Whether the user is at it: an input event in the last IDLE_AFTER_S seconds, or a button held."""
        return bool(self._buttons_down) or now - self.last_input < IDLE_AFTER_S

    def wait(self, timeout: float) -> None:
        """Sleep until an input event, a :meth:`wake` or ``timeout`` seconds, whichever comes first."""
        if timeout > 0:
            self._glfw.wait_events_timeout(timeout)

    def wake(self) -> None:
        """End a :meth:`wait` early; safe from any thread."""
        self._glfw.post_empty_event()

    def read_frame(self) -> np.ndarray:
        import OpenGL.GL as gl

        from viz.gl import read_pixels

        fbw, fbh = self._glfw.get_framebuffer_size(self.window)
        gl.glReadBuffer(gl.GL_BACK)
        return read_pixels(fbw, fbh)

    def close(self) -> None:
        self._renderer.shutdown()
        self._glfw.destroy_window(self.window)
        self._glfw.terminate()


class EglHost:
    """No window: an EGL surfaceless context (Mesa) drawing into an offscreen framebuffer."""

    def __init__(self, width: int, height: int, scale: float = 1.0, frame_dt: float = 1 / 30) -> None:
        if os.environ.get("PYOPENGL_PLATFORM") != "egl":
            raise HostError("offscreen rendering needs PYOPENGL_PLATFORM=egl before OpenGL is imported")
        try:
            self._egl_display, self._egl_context = _create_egl_context()
        except HostError:
            raise
        except Exception as exc:  # a missing libEGL surfaces as ImportError/OSError/AttributeError
            raise HostError(
                f"no EGL for offscreen rendering ({type(exc).__name__}: {exc}); install libegl1, "
                "libegl-mesa0 and libgl1-mesa-dri"
            ) from None
        from imgui_bundle.python_backends.opengl_backend_programmable import ProgrammablePipelineRenderer

        from viz.gl import Framebuffer

        self.width, self.height = width, height
        self._scale = scale
        self._frame_dt = frame_dt
        self._fb = Framebuffer(width, height)
        self._renderer = ProgrammablePipelineRenderer()

    def ui_scale(self) -> float:
        return self._scale

    def should_close(self) -> bool:
        return False

    def take_dropped(self) -> list[str]:
        """No window, nothing is ever dropped."""
        return []

    def begin_frame(self) -> None:
        io = imgui.get_io()
        io.display_size = imgui.ImVec2(self.width, self.height)
        io.display_framebuffer_scale = imgui.ImVec2(1.0, 1.0)
        # A fixed step keeps offscreen frames reproducible whatever the machine's speed.
        io.delta_time = self._frame_dt

    def end_frame(self, draw_data: Any) -> None:
        import OpenGL.GL as gl

        self._fb.bind()
        gl.glViewport(0, 0, self.width, self.height)
        gl.glClearColor(*CLEAR_COLOR)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        self._renderer.render(draw_data)

    def present(self) -> None:
        import OpenGL.GL as gl

        gl.glFinish()

    def input_active(self, now: float) -> bool:
        return False  # no window, no user

    def wait(self, timeout: float) -> None:
        """Offscreen frames are drawn back to back: nothing to wait for."""

    def wake(self) -> None:
        """Nothing waits."""

    def read_frame(self) -> np.ndarray:
        from viz.gl import read_pixels

        self._fb.bind()
        return read_pixels(self.width, self.height)

    def close(self) -> None:
        from OpenGL import EGL

        self._renderer.shutdown()
        self._fb.delete()
        EGL.eglMakeCurrent(self._egl_display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
        EGL.eglDestroyContext(self._egl_display, self._egl_context)
        EGL.eglTerminate(self._egl_display)


def _create_egl_context() -> tuple[Any, Any]:
    from OpenGL import EGL

    # Surfaceless Mesa needs neither X nor a GPU; fall back to the default display elsewhere.
    display = EGL.eglGetPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL.EGL_DEFAULT_DISPLAY, None)
    major, minor = EGL.EGLint(), EGL.EGLint()
    ok = False
    try:
        ok = bool(display) and bool(EGL.eglInitialize(display, ctypes.pointer(major), ctypes.pointer(minor)))
    except EGL.EGLError:
        ok = False
    if not ok:
        display = EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)
        try:
            EGL.eglInitialize(display, ctypes.pointer(major), ctypes.pointer(minor))
        except EGL.EGLError as exc:
            raise HostError(
                f"no EGL display for offscreen rendering ({exc.err}); install libegl-mesa0"
            ) from None
    config_attribs = (EGL.EGLint * 13)(
        EGL.EGL_SURFACE_TYPE,
        EGL.EGL_PBUFFER_BIT,
        EGL.EGL_RED_SIZE,
        8,
        EGL.EGL_GREEN_SIZE,
        8,
        EGL.EGL_BLUE_SIZE,
        8,
        EGL.EGL_ALPHA_SIZE,
        8,
        EGL.EGL_RENDERABLE_TYPE,
        EGL.EGL_OPENGL_BIT,
        EGL.EGL_NONE,
    )
    config, count = EGL.EGLConfig(), EGL.EGLint()
    EGL.eglChooseConfig(display, config_attribs, ctypes.pointer(config), 1, ctypes.pointer(count))
    if count.value < 1:
        raise HostError("EGL offers no RGBA8 OpenGL configuration; install libgl1-mesa-dri")
    EGL.eglBindAPI(EGL.EGL_OPENGL_API)
    context_attribs = (EGL.EGLint * 7)(
        EGL.EGL_CONTEXT_MAJOR_VERSION,
        3,
        EGL.EGL_CONTEXT_MINOR_VERSION,
        3,
        EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK,
        EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
        EGL.EGL_NONE,
    )
    context = EGL.eglCreateContext(display, config, EGL.EGL_NO_CONTEXT, context_attribs)
    if not context:
        raise HostError("EGL could not create an OpenGL 3.3 core context; install libgl1-mesa-dri")
    # Surfaceless: no pbuffer needed, we draw into our own framebuffer object.
    if not EGL.eglMakeCurrent(display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, context):
        raise HostError(
            "EGL could not make the offscreen context current (EGL_KHR_surfaceless_context missing)"
        )
    log.info("offscreen OpenGL via EGL %d.%d", major.value, minor.value)
    return display, context


def _decode(desc: Any) -> str:
    return desc.decode(errors="replace") if isinstance(desc, bytes) else str(desc)
