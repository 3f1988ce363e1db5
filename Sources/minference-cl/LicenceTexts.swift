import ArgumentParser
import FoundationEssentials
import MInferenceCLModel

/// The long real English text of `demo` and `check-model`: the licence texts every Debian system
/// installs in /usr/share/common-licenses, concatenated (a blank line between two) in `order`
/// until the tokens wanted are there.
///
/// The configs in Configs/ were calibrated on GPL-2 (the 2K one) and on GPL-2, LGPL-2.1, GFDL-1.3,
/// MPL-1.1 and Artistic (the 8K one), so those come last, with GPL-1 and LGPL-2 that share much of
/// GPL-2's wording: the measures are taken on text the searches did not see whenever the folder
/// has enough of it (GPL-3 and Apache-2.0 give 8K tokens). Files not named here follow `order` in
/// name order, before `last`; links to a file already taken (GPL → GPL-3) are skipped.
struct LicenceTexts {
    static let folder = "/usr/share/common-licenses"
    static let order = ["GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-3", "CC0-1.0", "BSD", "GFDL-1.2"]
    static let last = ["GFDL-1.3", "MPL-1.1", "Artistic", "LGPL-2.1", "LGPL-2", "GPL-1", "GPL-2"]

    /// The tokens, and the names of the files they came from.
    var tokens: [Int32]
    var files: [String]

    /// Reads files of `folder` in order until `tokens` tokens are there (or every file is read).
    /// - Throws: `ValidationError` when the folder holds no readable text.
    init(tokens wanted: Int, tokenizer: Tokenizer, folder: String = LicenceTexts.folder) throws {
        let manager = FileManager.default
        let present = ((try? manager.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        let others = present.filter { !Self.order.contains($0) && !Self.last.contains($0) }
        var seen = Set<String>()
        tokens = []
        files = []
        for name in (Self.order + others + Self.last) where present.contains(name) && tokens.count < wanted {
            let path = folder + "/" + name
            let real = (try? manager.destinationOfSymbolicLink(atPath: path)).map { $0.hasPrefix("/") ? $0 : folder + "/" + $0 } ?? path
            guard seen.insert(real).inserted, let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let piece = tokenizer.encode((tokens.isEmpty ? "" : "\n\n") + text)
            guard !piece.isEmpty else { continue }
            tokens += piece
            files.append(name)
        }
        guard !tokens.isEmpty else {
            throw ValidationError("no licence texts in \(folder) (Debian's base-files installs them); give a text file with --text")
        }
    }
}
