/** A minimal well-formedness check of the SVG the bench writes (no XML parser among the dependencies). */

/**
 * Checks that `text` is well-formed XML, minimally: every tag closes in order, attributes
 * are quoted, no bare `&` or `<` in text. Returns the root element's name.
 */
export function checkXml(text: string): string {
  const stack: string[] = []
  let root = ''
  const body = text.replace(/^<\?xml[^>]*\?>\s*/, '')
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy
  let m: RegExpExecArray | null
  let pos = 0
  while (pos < body.length && (m = tag.exec(body)) !== null) {
    pos = tag.lastIndex
    const [, close, name, , selfClose, textNode] = m
    if (textNode !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(textNode)) throw new Error(`bare & in ${JSON.stringify(textNode.slice(0, 40))}`)
      if (stack.length === 0 && textNode.trim()) throw new Error('text outside the root')
      continue
    }
    if (close) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`)
    } else {
      if (!root) root = name as string
      else if (stack.length === 0) throw new Error('two root elements')
      if (!selfClose) stack.push(name as string)
    }
  }
  if (pos !== body.length) throw new Error(`malformed near ${JSON.stringify(body.slice(pos, pos + 40))}`)
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`)
  return root
}
