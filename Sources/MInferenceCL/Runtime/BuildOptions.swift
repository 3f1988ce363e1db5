/// The `-D` preamble and compiler flags of one program build. Sorted, so equal option sets give
/// equal command lines and cache keys.
public struct BuildOptions: Sendable, Hashable, CustomStringConvertible {
    public var defines: [String: String]
    public var flags: [String]

    public init(defines: [String: String] = [:], flags: [String] = []) {
        self.defines = defines
        self.flags = flags
    }

    public var commandLine: String {
        (defines.keys.sorted().map { "-D\($0)=\(defines[$0]!)" } + flags).joined(separator: " ")
    }

    public var description: String { commandLine }
}
