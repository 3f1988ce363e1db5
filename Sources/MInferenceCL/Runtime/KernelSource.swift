import FoundationEssentials
import MInferenceCLKernels
import Synchronization

/// The text of one kernel file with its `#include "..."` lines resolved, ready for
/// `clCreateProgramWithSource`. Files come from the binary (embedded at build time) unless
/// `MINFERENCECL_KERNELS_DIR` names a folder to read them from (kernel development).
package struct KernelSource: Sendable, Hashable {
    package static let overrideDirectoryVariable = "MINFERENCECL_KERNELS_DIR"

    package let file: String
    package let text: String
    /// FNV-1a of `text`: the source part of the program cache key.
    package let hash: UInt64

    init(file: String, text: String) {
        self.file = file
        self.text = text
        self.hash = StableHash.fnv1a64(text.utf8)
    }

    /// The kernel file `file` (e.g. `dense_attention.cl`) with its includes inlined. Resolved
    /// once per process and folder (every launch asks for its source).
    package static func named(_ file: String) throws -> KernelSource {
        let directory = ProcessInfo.processInfo.environment[overrideDirectoryVariable]
        let key = file + "\u{0}" + (directory ?? "")
        if let known = resolved.withLock({ $0[key] }) { return known }
        let source = KernelSource(file: file, text: try resolve(file, directory: directory, seen: []))
        resolved.withLock { $0[key] = source }
        return source
    }

    /// Sources resolved so far, by file and override folder.
    private static let resolved = Mutex<[String: KernelSource]>([:])

    /// The raw text of one kernel file.
    static func raw(_ file: String, directory: String?) throws -> String {
        if let directory, !directory.isEmpty {
            let path = directory.hasSuffix("/") ? directory + file : directory + "/" + file
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KernelSourceError.missing(file: file, place: "\(overrideDirectoryVariable)=\(directory)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        guard let text = EmbeddedKernels.files[file] else {
            throw KernelSourceError.missing(file: file, place: "the embedded kernels")
        }
        return text
    }

    private static func resolve(_ file: String, directory: String?, seen: Set<String>) throws -> String {
        if seen.contains(file) { return "" }
        let text = try raw(file, directory: directory)
        var out = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("#include \""), let close = trimmed.dropFirst(10).firstIndex(of: "\"") {
                let name = String(trimmed.dropFirst(10)[..<close])
                out += "/* ---- \(name) ---- */\n"
                out += try resolve(name, directory: directory, seen: seen.union([file]))
                out += "\n/* ---- end of \(name) ---- */\n"
            } else {
                out += line
                out += "\n"
            }
        }
        return out
    }
}

/// A kernel file that could not be found: a program was asked for a file that neither the binary
/// embeds nor the folder of `MINFERENCECL_KERNELS_DIR` holds.
public enum KernelSourceError: Error, CustomStringConvertible, Sendable {
    /// `file` is not in `place` (the embedded kernels, or the override folder).
    case missing(file: String, place: String)
    /// One line naming the file and where it was looked for.
    public var description: String {
        switch self {
        case .missing(let file, let place): "kernel file \(file) not found in \(place)"
        }
    }
}

/// A hash that is the same in every process (Swift's `Hasher` is seeded per process).
enum StableHash {
    static func fnv1a64<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 where S.Element == UInt8 {
        // Contiguous bytes (arrays, slices, native strings' UTF-8) take the buffer loop: program
        // binaries are megabytes, and the generic iterator is slow in debug builds.
        if let h = bytes.withContiguousStorageIfAvailable({ fnv1a64(buffer: $0, seed: seed) }) { return h }
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    private static func fnv1a64(buffer: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
        var h = seed
        for i in 0..<buffer.count {
            h ^= UInt64(buffer[i])
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
