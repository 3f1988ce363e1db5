import FoundationEssentials

/// Built program binaries on disk, so a second process does not recompile. One file per
/// `ProgramKey`, written to a temporary name and renamed into place (atomic, safe when several
/// processes write at once). A file that is truncated, corrupted or made for another key is
/// ignored and rebuilt.
///
/// Location: `MINFERENCECL_CACHE_DIR` (`off` disables the cache), else
/// `$XDG_CACHE_HOME/minference-cl`, else `~/.cache/minference-cl`.
public struct DiskProgramCache: Sendable {
    /// The environment variable naming the cache folder (`off`, `none`, `0` or empty: no cache).
    public static let directoryVariable = "MINFERENCECL_CACHE_DIR"
    static let magic: [UInt8] = Array("MICLPRG1".utf8)

    /// The folder holding the `.clbin` files; created on the first store.
    public let directory: String

    /// A cache in `directory` (nothing is created until a program is stored).
    public init(directory: String) {
        self.directory = directory
    }

    /// The cache named by the environment, or nil when it is turned off.
    public static func fromEnvironment() -> DiskProgramCache? {
        let environment = ProcessInfo.processInfo.environment
        if let dir = environment[directoryVariable] {
            let lowered = dir.lowercased()
            if lowered == "off" || lowered == "none" || lowered == "0" || dir.isEmpty { return nil }
            return DiskProgramCache(directory: dir)
        }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return DiskProgramCache(directory: xdg + "/minference-cl")
        }
        let home = environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
        return DiskProgramCache(directory: home + "/.cache/minference-cl")
    }

    func path(for key: ProgramKey) -> String { directory + "/" + key.digest + ".clbin" }

    /// The stored binary for `key`, or nil when there is none or it does not validate.
    func load(_ key: ProgramKey) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: path(for: key)) else { return nil }
        return Self.decode([UInt8](data), key: key)
    }

    func store(_ key: ProgramKey, binary: [UInt8]) throws {
        guard !binary.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let bytes = Self.encode(binary, key: key)
        try Data(bytes).write(to: URL(fileURLWithPath: path(for: key)), options: .atomic)
    }

    // Format: magic, key length (u32 LE), key text, binary length (u64 LE), binary, FNV-1a of binary (u64 LE).
    static func encode(_ binary: [UInt8], key: ProgramKey) -> [UInt8] {
        let keyText = Array(key.description.utf8)
        var out = magic
        out += littleEndian(UInt32(keyText.count))
        out += keyText
        out += littleEndian(UInt64(binary.count))
        out += binary
        out += littleEndian(StableHash.fnv1a64(binary))
        return out
    }

    static func decode(_ bytes: [UInt8], key: ProgramKey) -> [UInt8]? {
        var cursor = 0
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, cursor + n <= bytes.count else { return nil }
            defer { cursor += n }
            return bytes[cursor..<cursor + n]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard let raw = take(MemoryLayout<T>.size) else { return nil }
            return raw.reversed().reduce(T(0)) { $0 << 8 | T($1) }
        }
        guard let head = take(magic.count), Array(head) == magic,
              let keyLength = integer(UInt32.self), let keyText = take(Int(keyLength)),
              Array(keyText) == Array(key.description.utf8),
              let length = integer(UInt64.self), length <= UInt64(bytes.count),
              let binary = take(Int(length)), let sum = integer(UInt64.self),
              cursor == bytes.count, StableHash.fnv1a64(binary) == sum
        else { return nil }
        return Array(binary)
    }

    private static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
