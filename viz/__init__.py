"""ADA Studio visualizer (imgui-bundle + glfw + PyOpenGL)."""
