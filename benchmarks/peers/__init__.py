"""Side-by-side epoch times against the tools users would pick instead."""
