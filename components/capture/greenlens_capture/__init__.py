"""greenlens.Capture: reads a camera, stream, video file, image folder or synthetic scene into the frame ring."""
