"""The toy world: procedural arithmetic problems, a procedural R1-style teacher and tiny students.

It lets the whole pipeline run on a laptop CPU in minutes and still measure a real distillation gain.
"""
