"""HTTP adapters: the Segment Tracking API, the Segment-shaped Profile API, OpenCDP's own APIs."""
