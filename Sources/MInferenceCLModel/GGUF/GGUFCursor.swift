/// A bounds-checked little-endian reader over the bytes of a GGUF file. Every read checks the
/// remaining length first and throws `GGUFError.truncated` naming what was being read, so a
/// damaged file never reads out of bounds; counts are checked against the bytes left before
/// anything is allocated for them.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - offset }

    /// The next `count` bytes, or `truncated` naming `what`.
    mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw GGUFError.truncated(path: path, what: what(), offset: offset, needed: count, fileSize: bytes.count)
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let raw = try take(MemoryLayout<T>.size, what())
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    /// A u64 length or count that must fit in Int and whose items (at least `itemSize` bytes each)
    /// must fit in what is left of the file.
    mutating func readCount(itemSize: Int, _ what: @autoclosure () -> String) throws -> Int {
        let start = offset
        let raw = try read(UInt64.self, what())
        guard let count = Int(exactly: raw), count <= remaining / max(itemSize, 1) else {
            // Needed from `start`: the count itself, then its items.
            let needed = raw > UInt64(Int.max / max(itemSize, 1) - 8) ? Int.max : 8 + Int(raw) * itemSize
            throw GGUFError.truncated(path: path, what: what() + " (count \(raw))", offset: start, needed: needed,
                                      fileSize: bytes.count)
        }
        return count
    }

    /// A GGUF string: u64 byte length, then UTF-8 without a terminator. Invalid UTF-8 is repaired
    /// with U+FFFD, as llama.cpp does not check it either.
    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let length = try readCount(itemSize: 1, what())
        return String(decoding: try take(length, what()), as: UTF8.self)
    }

    /// Moves to the next multiple of `alignment` (a power of two).
    mutating func align(to alignment: Int) {
        offset = (offset + alignment - 1) & ~(alignment - 1)
    }
}
