//! The app icon, rendered from its one source, `assets/icons/cutout.svg`, with resvg. The window
//! icon is rendered at start-up; `tests/integration/icons.rs` renders the PNG sizes and the multi-size ICO in
//! `assets/icons/` from the same function and fails when the files no longer match the SVG.

use image::RgbaImage;

/// The SVG source.
pub const SVG: &str = include_str!("../../assets/icons/cutout.svg");

/// PNG sizes shipped in `assets/icons/` (Linux icon themes, AppStream).
pub const PNG_SIZES: [u32; 8] = [16, 24, 32, 48, 64, 128, 256, 512];

/// Sizes inside `cutout.ico` (Windows: Start Menu, taskbar, Explorer; 256 is the largest an ICO
/// holds).
pub const ICO_SIZES: [u32; 7] = [16, 24, 32, 48, 64, 128, 256];

/// Why the icon could not be rendered (only a broken SVG source).
#[derive(Debug, thiserror::Error)]
pub enum IconError {
    /// The SVG did not parse.
    #[error("the icon SVG is invalid: {0}")]
    Svg(String),
    /// A zero or huge size.
    #[error("cannot render the icon at {0} px")]
    Size(u32),
}

/// Renders the icon at `size_px` × `size_px`, straight (not premultiplied) alpha.
pub fn render(size_px: u32) -> Result<RgbaImage, IconError> {
    let tree = resvg::usvg::Tree::from_str(SVG, &resvg::usvg::Options::default())
        .map_err(|e| IconError::Svg(e.to_string()))?;
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size_px, size_px).ok_or(IconError::Size(size_px))?;
    #[allow(clippy::cast_precision_loss)]
    let scale = size_px as f32 / tree.size().width().max(1.0);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let rgba: Vec<u8> = pixmap
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect();
    RgbaImage::from_raw(size_px, size_px, rgba).ok_or(IconError::Size(size_px))
}

/// The window icon for eframe.
pub fn window_icon() -> Result<egui::IconData, IconError> {
    let image = render(256)?;
    Ok(egui::IconData {
        width: image.width(),
        height: image.height(),
        rgba: image.into_raw(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_icon_renders_with_a_transparent_corner_and_an_opaque_middle() {
        let icon = render(64).unwrap();
        assert_eq!(icon.dimensions(), (64, 64));
        assert_eq!(icon.get_pixel(0, 0).0[3], 0, "rounded corner");
        assert_eq!(
            icon.get_pixel(26, 25).0,
            [255, 255, 255, 255],
            "the white subject"
        );
        assert_eq!(window_icon().unwrap().width, 256);
    }
}
