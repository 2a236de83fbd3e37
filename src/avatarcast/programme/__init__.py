"""programme."""
