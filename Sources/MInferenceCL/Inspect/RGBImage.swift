/// An 8-bit RGB picture in memory (row-major, 3 bytes per pixel), drawn by `AttentionPicture`
/// and handed to a PNG encoder by the command-line tool.
package struct RGBImage: Sendable, Equatable {
    package let width: Int
    package let height: Int
    package var pixels: [UInt8]

    /// A picture filled with one colour.
    package init(width: Int, height: Int, fill: (red: UInt8, green: UInt8, blue: UInt8) = (255, 255, 255)) {
        precondition(width > 0 && height > 0, "picture of \(width) x \(height) pixels")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) { (pixels[3 * p], pixels[3 * p + 1], pixels[3 * p + 2]) = fill }
    }

    package subscript(x: Int, y: Int) -> (red: UInt8, green: UInt8, blue: UInt8) {
        get { let p = 3 * (y * width + x); return (pixels[p], pixels[p + 1], pixels[p + 2]) }
        set { let p = 3 * (y * width + x); (pixels[p], pixels[p + 1], pixels[p + 2]) = newValue }
    }

    /// Copies `other` with its top-left corner at (x, y), clipped to this picture.
    package mutating func draw(_ other: RGBImage, x: Int, y: Int) {
        for row in 0..<other.height where y + row >= 0 && y + row < height {
            for column in 0..<other.width where x + column >= 0 && x + column < width {
                self[x + column, y + row] = other[column, row]
            }
        }
    }
}
