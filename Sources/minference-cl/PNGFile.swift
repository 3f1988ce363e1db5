import CPNG
import FoundationEssentials
import MInferenceCL

/// PNG files through libpng's simplified API (png_image_write_to_memory), written atomically.
enum PNGFile {
    static func write(_ image: RGBImage, to path: String) throws {
        var png = png_image()
        png.version = cpng_image_version
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = cpng_format_rgb
        defer { png_image_free(&png) }
        let rowStride = Int32(image.width * 3)
        var size = 0
        // First call: the encoded size; second call: the bytes.
        let sized = image.pixels.withUnsafeBytes { pixels in
            png_image_write_to_memory(&png, nil, &size, 0, pixels.baseAddress, rowStride, nil)
        }
        guard sized != 0, size > 0 else { throw PNGError(path: path, reason: message(png)) }
        var bytes = [UInt8](repeating: 0, count: size)
        let written = bytes.withUnsafeMutableBytes { out in
            image.pixels.withUnsafeBytes { pixels in
                png_image_write_to_memory(&png, out.baseAddress, &size, 0, pixels.baseAddress, rowStride, nil)
            }
        }
        guard written != 0 else { throw PNGError(path: path, reason: message(png)) }
        do {
            try Data(bytes.prefix(size)).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw PNGError(path: path, reason: "\(error)")
        }
    }

    /// libpng's error text (a fixed char[64] in png_image).
    private static func message(_ png: png_image) -> String {
        var text = png.message
        return withUnsafeBytes(of: &text) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

struct PNGError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "\(path): cannot write PNG (\(reason.isEmpty ? "libpng failed" : reason))" }
}
