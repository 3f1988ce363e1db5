import Foundation
import MInferenceCLModel
import Testing

/// The tokenizer of the real SmolLM2-135M-Instruct GGUF against ids from Hugging Face
/// `tokenizers`, checked against llama.cpp (Fixtures/tokenizer/smollm2.json), and against
/// llama.cpp on 300 random texts of hard pieces (smollm2-random.json); make_fixtures.py beside
/// them makes both.
@Suite("Tokenizer: the real SmolLM2-135M vocabulary", .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct TokenizerModelTests {
    static let tokenizer = RealModel.tokenizer

    struct Case: Decodable, CustomTestStringConvertible, Sendable {
        var name: String, text: String, ids: [Int32]
        /// The text the ids stand for, where it is not `text` (bytes without a token dropped).
        var decoded: String?
        var testDescription: String { name }
    }

    static func load(_ name: String) -> [Case] {
        struct Fixture: Decodable { var cases: [Case] }
        let data = try! Data(contentsOf: URL(fileURLWithPath: fixturePath("tokenizer/" + name)))
        return try! JSONDecoder().decode(Fixture.self, from: data).cases
    }

    static let cases = load("smollm2.json")

    @Test("Vocabulary: 49152 tokens, 17 control tokens, 48900 merges, bos 1, eos and padding 2")
    func vocabulary() throws {
        let t = try Self.tokenizer.get()
        #expect(t.vocabularySize == 49152)
        #expect(t.tokenTypes.filter { $0 == .control }.count == 17)
        #expect(t.tokens[0] == "<|endoftext|>" && t.tokens[1] == "<|im_start|>" && t.tokens[2] == "<|im_end|>")
        #expect(t.bos == 1 && t.eos == 2 && t.padding == 2 && t.unknown == 0 && !t.addsBOS)
        #expect(t.preTokenizer == .gpt2SingleDigits)
        #expect(t.skippedMerges == 0)
    }

    @Test("Ids equal the reference's", arguments: cases)
    func fixture(_ c: Case) throws {
        let t = try Self.tokenizer.get()
        #expect(t.encode(c.text) == c.ids)
        #expect(try t.decode(c.ids) == c.decoded ?? c.text)
    }

    @Test("Ids equal llama.cpp's on 300 random texts")
    func randomTexts() throws {
        let t = try Self.tokenizer.get()
        for c in Self.load("smollm2-random.json") {
            #expect(t.encode(c.text) == c.ids, "\(c.name): \(c.text.debugDescription)")
        }
    }

    @Test("A 128K-token text encodes in seconds and decodes back")
    func longText() throws {
        let t = try Self.tokenizer.get()
        let text = String(repeating: Self.cases.filter { $0.decoded == nil }.map(\.text).joined(separator: "\n"), count: 270)
        let start = ContinuousClock.now
        let ids = t.encode(text)
        let elapsed = ContinuousClock.now - start
        print("Tokenizer: \(text.utf8.count) bytes -> \(ids.count) tokens in \(elapsed)")
        #expect(ids.count > 128_000)
        #expect(elapsed < .seconds(30))
        #expect(try t.decode(ids) == text)
    }
}
