import FoundationEssentials
import MInferenceCL
#if canImport(Glibc)
import Glibc
#endif

/// Output paths of the command-line tool: checked before any work, removed when a later write of
/// the same run fails (each file itself is written atomically, so none is ever half written).
enum OutputFiles {
    /// Throws `TensorFileError.unwritable` unless `path` can be created or replaced: its folder
    /// exists and is writable, and the path is not a folder.
    static func checkWritable(_ path: String) throws {
        if isFolder(path) { throw TensorFileError.unwritable(path: path, reason: "it is a folder") }
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let parent = folder.isEmpty ? "/" : folder
        guard isFolder(parent) else {
            throw TensorFileError.unwritable(path: path, reason: "the folder \(parent) does not exist")
        }
        guard access(parent, W_OK | X_OK) == 0 else {
            throw TensorFileError.unwritable(path: path, reason: "the folder \(parent) is not writable")
        }
    }

    private static func isFolder(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Removes `paths`, ignoring failures (the run is failing already).
    static func remove(_ paths: [String]) {
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }
}
